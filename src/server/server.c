/* SPDX-License-Identifier: MIT */
/* placeholder: replaced by the server implementation */
#include <sdrsa/protocol.h>
