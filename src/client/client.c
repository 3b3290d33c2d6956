/* SPDX-License-Identifier: MIT */
/* placeholder: replaced by the client library implementation */
#include <sdrsa/client.h>
