/* SPDX-License-Identifier: MIT */
/* rsa-app sim (src/bin/rsa-sim.c): the trace simulator's command line. */
#ifndef SDRSA_BIN_RSA_SIM_H
#define SDRSA_BIN_RSA_SIM_H

#include <stdio.h>

int rsa_sim_main(int argc, char **argv);
void rsa_sim_usage(FILE *f);

#endif
