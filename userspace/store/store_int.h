/* SPDX-License-Identifier: MIT */
/* Internal state of the store (store.c, store_writer.c, store_err.c). */
#ifndef WEFT_STORE_INT_H
#define WEFT_STORE_INT_H

#include <lmdb.h>
#include <stdint.h>

#include "weft/store.h"

struct store_writer;

struct store {
	MDB_env *env;
	MDB_dbi meta;
	int lock_fd;
	uint32_t version;
	int read_only;
	struct store_writer *writer; /* NULL when read-only */
};

struct store_txn {
	struct store *st;
	MDB_txn *txn;
	int read_only;
};

/* LMDB codes -> negative errno (store_err.c). */
int store_mdb_err(int rc);

/* store_writer.c: start with the store open; stop drains the queue within
 * STORE_WRITER_STOP_MS and returns -ETIMEDOUT if the thread is still
 * inside LMDB then (the caller must not close the environment). */
int store_writer_start(struct store *st, const struct store_opts *opts);
int store_writer_stop(struct store *st);

#endif
