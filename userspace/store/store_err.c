// SPDX-License-Identifier: MIT
/*
 * LMDB codes -> negative errno, at the module boundary (docs/STYLE.md rule 4).
 * Its own file below store.c (environment, transactions) and
 * store_writer.c (the writer thread), which both translate LMDB codes, so
 * that the writer does not call back into the store's hub.
 */
#include <errno.h>
#include <lmdb.h>

#include "store_int.h"

int store_mdb_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
	case MDB_DBS_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_BAD_VALSIZE:
		return -EINVAL;
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
	case MDB_BAD_DBI:
		return -EBADMSG;
	case MDB_READERS_FULL:
		return -EAGAIN;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}
