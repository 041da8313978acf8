#ifndef TECHBANK_CPOSTGRES_SHIM_H
#define TECHBANK_CPOSTGRES_SHIM_H
#include <libpq-fe.h>
#endif
