// SPDX-License-Identifier: MIT
/*
 * Content on the mesh inside weftd, the hub of content/: the node's
 * lifecycle (its parts started and stopped in order), adding files and
 * folders as shares, and the /v1/content control API. It calls its parts
 * and no part calls it: share records (shares.c), announcing
 * (announce.c), serving (serve.c), the download jobs (jobs.c, and below
 * them swarm.c, swarm_peers.c, swarm_conn.c, export.c), the chunk store
 * (chunkstore.c). What the parts share is struct content_node
 * (content_node_int.h), handed to them. See include/weft/content_node.h
 * and docs/CONTENT.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "content/content_node_int.h"
#include "content/readq.h"
#include "weft/ctl.h"
#include "weft/quic_node.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/store.h"
#include "weft/seal.h"
#include "weft/util.h"
/* ---------------------------------------------------------- adding */

/* Media type from the file name's extension; application/octet-stream
 * when unknown. A short table: what a browser needs for common files. */
static const char *media_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} t[] = {
	    {"txt", "text/plain"},	  {"md", "text/markdown"},
	    {"html", "text/html"},	  {"htm", "text/html"},
	    {"css", "text/css"},	  {"csv", "text/csv"},
	    {"js", "text/javascript"},	  {"json", "application/json"},
	    {"xml", "application/xml"},	  {"pdf", "application/pdf"},
	    {"zip", "application/zip"},	  {"gz", "application/gzip"},
	    {"tar", "application/x-tar"}, {"png", "image/png"},
	    {"jpg", "image/jpeg"},	  {"jpeg", "image/jpeg"},
	    {"gif", "image/gif"},	  {"svg", "image/svg+xml"},
	    {"webp", "image/webp"},	  {"mp3", "audio/mpeg"},
	    {"ogg", "audio/ogg"},	  {"mp4", "video/mp4"},
	    {"webm", "video/webm"},	  {"wasm", "application/wasm"},
	};
	const char *dot = strrchr(name, '.');

	if (dot && !strchr(dot, '/'))
		for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
			if (!strcasecmp(dot + 1, t[i].ext))
				return t[i].type;
	return "application/octet-stream";
}

/* What an add builds: the manifest, and for a sealed share the
 * encryption's state (private.c). */
struct add_ctx {
	struct content_node *cn;
	struct manifest *m;
	struct cn_seal_add *sa; /* NULL: public */
};

static int add_one(struct add_ctx *c, const char *path, const char *rel)
{
	struct stat st;
	uint8_t id[32];
	int fd, rc;

	if (c->sa) {
		/* sealed: the plaintext is read once, encrypted on its way in */
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (fstat(fd, &st)) {
			rc = -errno;
		} else if (!S_ISREG(st.st_mode)) {
			rc = 0;
		} else {
			rc = cn_seal_add_file(c->cn, c->sa, c->m, fd, (uint64_t)st.st_size, rel,
					      media_type(rel));
			if (rc)
				log_warn(CN_MOD, "cannot add %s: %s", path, strerror(-rc));
		}
		close(fd);
		return rc;
	}
	if (stat(path, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0; /* sockets, devices, ...: skipped */
	rc = cstore_add_file(c->cn->cs, path, id);
	if (rc) {
		log_warn(CN_MOD, "cannot add %s: %s", path, strerror(-rc));
		return rc;
	}
	return manifest_add_item(c->m, rel, strlen(rel), id, (uint64_t)st.st_size, media_type(rel));
}

/* Depth-first over a folder; symlinks are not followed into directories
 * (a loop would never end), entries sorted by the manifest itself. */
static int add_tree(struct add_ctx *c, const char *dir, const char *rel, int depth)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int rc = 0;

	if (depth > 32)
		return -ELOOP;
	d = opendir(dir);
	if (!d)
		return -errno;
	while (!rc && (de = readdir(d))) {
		char p[PATH_MAX], r[MANIFEST_MAX_PATH + 2];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) >= (int)sizeof(p) ||
		    snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "", de->d_name) >=
			(int)sizeof(r)) {
			rc = -ENAMETOOLONG;
			break;
		}
		if (lstat(p, &st)) {
			rc = -errno;
			break;
		}
		if (S_ISDIR(st.st_mode))
			rc = add_tree(c, p, r, depth + 1);
		else
			rc = add_one(c, p, r);
	}
	closedir(d);
	return rc;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s && s[1] ? s + 1 : p;
}

/* A member of a request body that is there but of another type. */
static int wrong_type(json_t *body, const char *key, int (*is)(const json_t *))
{
	json_t *v = json_object_get(body, key);

	return v && !is(v);
}

static int is_bool(const json_t *v)
{
	return json_is_boolean(v);
}

static int is_string(const json_t *v)
{
	return json_is_string(v);
}

static int is_array(const json_t *v)
{
	return json_is_array(v);
}

int cn_api_parse_add(json_t *body, struct cn_add_args *a, struct ctl_resp *resp)
{
	const char *name = json_string_value(json_object_get(body, "name"));
	char trimmed[PATH_MAX];
	struct manifest m;
	json_t *v;
	size_t i, len;
	int rc;

	memset(a, 0, sizeof(*a));
	a->paths = json_object_get(body, "paths");
	if (!json_is_object(body) || !json_is_array(a->paths) || !json_array_size(a->paths) ||
	    wrong_type(body, "name", is_string) || wrong_type(body, "private", is_bool)) {
		ctl_resp_error(resp, 400, "bad_request",
			       "expected {\"paths\": [PATH, ...], \"name\"?: NAME, \"private\"?: "
			       "BOOL, \"to\"?: [KEY, ...], \"to_circle\"?: [NAME, ...]}");
		return -EINVAL;
	}
	/* Every path checked before any file is read. */
	json_array_foreach(a->paths, i, v)
	{
		const char *p = json_string_value(v);

		if (!p || p[0] != '/' || strlen(p) >= PATH_MAX) {
			ctl_resp_error(resp, 400, "bad_request", "paths must be absolute");
			return -EINVAL;
		}
	}
	a->priv = json_is_true(json_object_get(body, "private"));
	if (cn_api_parse_recipients(body, a, resp)) {
		cn_api_add_args_free(a);
		return -EINVAL;
	}
	if (!name) {
		snprintf(trimmed, sizeof(trimmed), "%s",
			 json_string_value(json_array_get(a->paths, 0)));
		len = strlen(trimmed);
		while (len > 1 && trimmed[len - 1] == '/')
			trimmed[--len] = 0;
		name = base_name(trimmed);
	}
	/* Private shares get a suffix (api_add, keyed): checked here with a
	 * stand-in of its length. */
	if (a->priv)
		snprintf(a->name, sizeof(a->name), "%.*s", CN_PRIV_BASE_MAX, name);
	else if (strlen(name) < sizeof(a->name))
		snprintf(a->name, sizeof(a->name), "%s", name);
	manifest_init(&m);
	if (a->priv && a->name[0]) {
		char full[MANIFEST_MAX_NAME + 1];

		snprintf(full, sizeof(full), "%.*s-0123456789abcdef", CN_PRIV_BASE_MAX, a->name);
		rc = manifest_set_name(&m, full, strlen(full));
	} else {
		rc = a->name[0] ? manifest_set_name(&m, a->name, strlen(a->name)) : -EINVAL;
	}
	manifest_free(&m);
	if (rc) {
		ctl_resp_error(resp, 400, "bad_request", "invalid share name");
		cn_api_add_args_free(a);
		return -EINVAL;
	}
	return 0;
}

/* POST /v1/content/add {"paths": [...], "name": "...", "private": false,
 * "to": [KEY, ...], "to_circle": [NAME, ...]} */
static void api_add(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	struct cn_add_args a;
	struct manifest m;
	struct add_ctx c = {.cn = cn, .m = &m};
	uint8_t (*rcpt)[32] = NULL;
	char nm[MANIFEST_MAX_NAME + 1];
	size_t i, len, nr = 0, bad = 0;
	json_t *v;
	int rc = 0;

	if (cn_api_parse_add(req->json, &a, resp))
		return;
	manifest_init(&m);
	if (a.priv) {
		/* recipients first: a bad key or too many costs no file read */
		rcpt = malloc(SEAL_MAX_RECIPIENTS * 32);
		if (!rcpt) {
			ctl_resp_errno(resp, -ENOMEM, "add");
			goto out;
		}
		if (cn_gather_recipients(cn, &a, rcpt, &nr, resp))
			goto out;
		rc = cn_seal_add_new(&c.sa, (const uint8_t(*)[32])rcpt, nr, &bad);
		if (rc) {
			char hex[65];

			util_hex(hex, rcpt[bad], 32);
			if (rc == -E2BIG)
				ctl_resp_error(resp, 413, "too_many_recipients",
					       "at most %u recipients", SEAL_MAX_RECIPIENTS);
			else
				ctl_resp_error(resp, 400, "bad_request",
					       "recipient %s is not a node key", hex);
			goto out;
		}
		cn_private_name(cn, a.name, nm, sizeof(nm));
	} else {
		snprintf(nm, sizeof(nm), "%s", a.name);
	}
	manifest_set_name(&m, nm, strlen(nm)); /* checked by cn_api_parse_add */
	json_array_foreach(a.paths, i, v)
	{
		struct stat st;
		char tp[PATH_MAX];

		snprintf(tp, sizeof(tp), "%s", json_string_value(v));
		len = strlen(tp);
		while (len > 1 && tp[len - 1] == '/')
			tp[--len] = 0;
		if (stat(tp, &st)) {
			rc = -errno;
			ctl_resp_errno(resp, rc, tp);
			goto out;
		}
		/* A single folder: its content at the top; several paths: each
		 * under its own name. */
		if (S_ISDIR(st.st_mode))
			rc = add_tree(&c, tp, json_array_size(a.paths) == 1 ? "" : base_name(tp), 0);
		else
			rc = add_one(&c, tp, base_name(tp));
		if (rc) {
			ctl_resp_errno(resp, rc, tp);
			goto out;
		}
	}
	if (c.sa && (rc = cn_seal_add_finish(c.sa, &m))) {
		ctl_resp_errno(resp, rc, rc == -ENOENT ? "no file to share" : "sealing the share");
		goto out;
	}
	m.visibility = a.priv ? MANIFEST_PRIVATE : MANIFEST_PUBLIC;
	m.created = (uint64_t)time(NULL);
	rc = cn_share_publish(cn, &m);
	if (rc == -EINVAL || rc == -E2BIG || rc == -EEXIST) {
		ctl_resp_errno(resp, rc, "share");
		goto out;
	} else if (rc) {
		ctl_resp_store_error(resp, rc, "content added");
		goto out;
	}
	{
		json_t *o = cn_share_json(cn, &m);

		if (o && m.sealed)
			json_object_set_new(o, "recipients", json_integer((json_int_t)nr));
		ctl_resp_json(resp, 200, o);
	}
out:
	cn_seal_add_free(c.sa);
	free(rcpt);
	cn_api_add_args_free(&a);
	manifest_free(&m);
}

static int list_blob(void *arg, const struct cstore_info *info)
{
	json_t *a = arg;
	char id[65];

	util_hex(id, info->id, 32);
	json_array_append_new(a, json_pack("{s:s,s:I,s:I,s:I,s:s}", "id", id, "size",
					   (json_int_t)info->size, "nchunks",
					   (json_int_t)info->nchunks, "have",
					   (json_int_t)info->have, "state",
					   info->state == CSTORE_COMPLETE  ? "complete"
					   : info->state == CSTORE_PARTIAL ? "partial"
									   : "bad"));
	return 0;
}

static int list_share(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	json_t *a = arg;
	struct manifest m;

	manifest_init(&m);
	if (manifest_decode(&m, val, vlen) == 0) {
		json_t *o = cn_manifest_json(&m);

		json_object_set_new(o, "nitems", json_integer(m.nitems));
		json_object_del(o, "items");
		json_object_del(o, "sig");
		json_array_append_new(a, o);
	}
	manifest_free(&m);
	return 0;
}

/* GET /v1/content */
static void api_list(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	json_t *blobs = json_array(), *shares = json_array();
	uint64_t used, quota;
	uint32_t n;

	cstore_list(cn->cs, list_blob, blobs);
	store_iter(cn->store, cn->shares_dbi, list_share, shares);
	cstore_usage(cn->cs, &used, &quota, &n);
	ctl_resp_json(resp, 200,
		      json_pack("{s:o,s:o,s:{s:I,s:I,s:i}}", "blobs", blobs, "shares", shares,
				"usage", "used", (json_int_t)used, "quota", (json_int_t)quota,
				"blobs", (int)n));
}

static int parse_items(json_t *body, struct cn_get_req *rq, struct ctl_resp *resp);

int cn_api_parse_get(json_t *body, struct cn_get_req *rq, struct ctl_resp *resp)
{
	const char *id = json_string_value(json_object_get(body, "id"));
	const char *out = json_string_value(json_object_get(body, "out"));
	json_t *from = json_object_get(body, "from"), *v;
	size_t i;

	memset(rq, 0, sizeof(*rq));
	if (id && (strchr(id, '/') || !strncmp(id, "magnet:", 7))) {
		/* a share head: resolved through the DHT by the caller */
		if (strlen(id) >= sizeof(rq->ref)) {
			ctl_resp_error(resp, 400, "bad_request", "id: head too long");
			return -EINVAL;
		}
		snprintf(rq->ref, sizeof(rq->ref), "%s", id);
	} else if (!id || (strlen(id) != 64 && strlen(id) != 40)) {
		ctl_resp_error(resp, 400, "bad_request",
			       "id must be a content id (64 hex) or a share id (40 hex)");
		return -EINVAL;
	}
	if (!rq->ref[0])
		rq->id_len = strlen(id) / 2;
	if (!rq->ref[0] && util_unhex(rq->id, rq->id_len, id)) {
		ctl_resp_error(resp, 400, "bad_request", "id is not hex");
		return -EINVAL;
	}
	if (wrong_type(body, "out", is_string) ||
	    (out && (out[0] != '/' || strlen(out) >= sizeof(rq->out) - 1024))) {
		ctl_resp_error(resp, 400, "bad_request", "out must be an absolute path");
		return -EINVAL;
	}
	if (out)
		snprintf(rq->out, sizeof(rq->out), "%s", out);
	if (wrong_type(body, "link", is_bool)) {
		ctl_resp_error(resp, 400, "bad_request", "link must be true or false");
		return -EINVAL;
	}
	rq->link = json_is_true(json_object_get(body, "link"));
	if (wrong_type(body, "raw", is_bool)) {
		ctl_resp_error(resp, 400, "bad_request", "raw must be true or false");
		return -EINVAL;
	}
	rq->raw = json_is_true(json_object_get(body, "raw"));
	if (wrong_type(body, "from", is_array)) {
		ctl_resp_error(resp, 400, "bad_request", "from: a list of targets");
		return -EINVAL;
	}
	json_array_foreach(from, i, v)
	{
		const char *t = json_string_value(v);

		if (!t || strlen(t) >= sizeof(rq->from[0]) || rq->nfrom == 8) {
			ctl_resp_error(resp, 400, "bad_request", "from: at most 8 targets");
			return -EINVAL;
		}
		snprintf(rq->from[rq->nfrom++], sizeof(rq->from[0]), "%s", t);
	}
	return parse_items(body, rq, resp);
}

/* "items": [PATH, ...]: only these items of a share (a path, or a folder
 * with or without its trailing '/'); each must be a valid item path. */
static int parse_items(json_t *body, struct cn_get_req *rq, struct ctl_resp *resp)
{
	json_t *items = json_object_get(body, "items"), *v;
	size_t i;

	if (!items)
		return 0;
	if (!json_is_array(items) || !json_array_size(items) ||
	    json_array_size(items) > CN_GET_MAX_ITEMS || rq->id_len == 32) {
		ctl_resp_error(resp, 400, "bad_request",
			       "items: 1 to %d paths of a share's items", CN_GET_MAX_ITEMS);
		return -EINVAL;
	}
	json_array_foreach(items, i, v)
	{
		const char *t = json_string_value(v);
		size_t n = t ? strlen(t) : 0;

		while (n > 1 && t[n - 1] == '/')
			n--;
		if (!t || !manifest_path_valid(t, n)) {
			ctl_resp_error(resp, 400, "bad_request", "items: %s is not an item path",
				       t ? t : "(not a string)");
			return -EINVAL;
		}
		memcpy(rq->sel[rq->nsel], t, n);
		rq->sel[rq->nsel++][n] = 0;
	}
	return 0;
}


/* Providers named by key alone: their node records' addresses (blocking
 * resolution, on the control thread, before any lock), at most 8 targets
 * in all. Returns 0, or -ENOENT / -EHOSTUNREACH for the first key that
 * has no record or no address (answered not_found / unreachable). */
static int expand_keys(struct content_node *cn, struct cn_get_req *rq, struct ctl_resp *resp)
{
	char from[8][sizeof(rq->from[0])], t[QUIC_NODE_RESOLVE_MAX][QUIC_NODE_TARGET_MAX];
	unsigned int nfrom = rq->nfrom, k;
	int n;

	memcpy(from, rq->from, sizeof(from));
	rq->nfrom = 0;
	for (k = 0; k < nfrom; k++) {
		n = quic_node_resolve(cn->quic, from[k], t, QUIC_NODE_RESOLVE_MAX);
		if (n == -ENOENT || n == -EHOSTUNREACH) {
			ctl_resp_error(resp, n == -ENOENT ? 404 : 502,
				       n == -ENOENT ? "not_found" : "unreachable",
				       n == -ENOENT ? "no node record for provider %s"
						    : "the node record of %s lists no address",
				       from[k]);
			return n;
		}
		if (n == -ENETUNREACH) {
			ctl_resp_error(resp, 503, "no_nodes",
				       "the routing table is empty (bootstrap first): provider %s "
				       "cannot be resolved",
				       from[k]);
			return n;
		}
		if (n == -EINVAL) {
			ctl_resp_error(resp, 400, "bad_request", "from: bad target %s", from[k]);
			return n;
		}
		if (n < 0) {
			ctl_resp_errno(resp, n, "resolving provider");
			return n;
		}
		_Static_assert(sizeof(rq->from[0]) == QUIC_NODE_TARGET_MAX, "target sizes");
		for (int i = 0; i < n && rq->nfrom < 8; i++)
			memcpy(rq->from[rq->nfrom++], t[i], QUIC_NODE_TARGET_MAX);
	}
	return 0;
}

/* POST /v1/content/get {"id": HEX, "out": DIR, "from": [TARGET, ...]};
 * a TARGET is KEY@ADDR, ADDR, or a node key alone (resolved). */
static void api_get(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	struct cn_get_req *rq;
	uint64_t jid;
	int rc;

	rq = calloc(1, sizeof(*rq));
	if (!rq) {
		ctl_resp_errno(resp, -ENOMEM, "get");
		return;
	}
	if (cn_api_parse_get(req->json, rq, resp) || expand_keys(cn, rq, resp))
		goto out;
	if (rq->ref[0] && cn_head_resolve_get(cn, rq->ref, rq, resp))
		goto out;
	if (cn_blocked(cn, rq->id, rq->id_len)) {
		atomic_fetch_add(&cn->blocked_refused, 1);
		ctl_resp_error(resp, 403, "blocked", "a blocklist this node follows lists it: refused");
		goto out;
	}
	rc = cn_job_start(cn, rq, &jid);
	if (rc) {
		ctl_resp_errno(resp, rc, "download");
		goto out;
	}
	ctl_resp_json(resp, 200, json_pack("{s:I}", "job", (json_int_t)jid));
out:
	free(rq);
}

/* GET /v1/content/jobs and /v1/content/jobs/N */
static void api_jobs(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	uint64_t jid;
	json_t *o;

	if (!req->subpath || !*req->subpath) {
		ctl_resp_json(resp, 200, json_pack("{s:o}", "jobs", cn_jobs_json(cn)));
		return;
	}
	if (util_parse_u64(req->subpath, 1, UINT64_MAX, &jid)) {
		ctl_resp_error(resp, 400, "bad_request", "job number expected");
		return;
	}
	o = cn_job_json(cn, jid);
	if (!o) {
		ctl_resp_error(resp, 404, "not_found", "no job %llu", (unsigned long long)jid);
		return;
	}
	ctl_resp_json(resp, 200, o);
}

/* GET /v1/content/shares/ID */
static void api_share(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	uint8_t sid[MANIFEST_SHARE_ID_LEN], *enc = NULL;
	struct manifest m;
	size_t len;
	int rc;

	if (!req->subpath || strlen(req->subpath) != 40 ||
	    util_unhex(sid, sizeof(sid), req->subpath)) {
		ctl_resp_error(resp, 400, "bad_request", "share id (40 hex) expected");
		return;
	}
	if (cn_share_get(cn, sid, &enc, &len)) {
		/* browse before download: fetch the manifest alone from the
		 * share's providers, verify and keep it */
		struct cn_get_req *rq = calloc(1, sizeof(*rq));
		char err[200] = "out of memory";
		uint64_t jid;

		rc = rq ? 0 : -ENOMEM;
		if (rq) {
			memcpy(rq->id, sid, sizeof(sid));
			rq->id_len = MANIFEST_SHARE_ID_LEN;
			rq->manifest_only = 1;
			rc = cn_job_start(cn, rq, &jid);
			free(rq);
			if (!rc)
				rc = cn_job_wait(cn, jid, util_now_ms() + 90000, err, sizeof(err));
			else
				snprintf(err, sizeof(err), "%s", strerror(-rc));
		}
		if (rc || cn_share_get(cn, sid, &enc, &len)) {
			ctl_resp_error(resp, 404, "not_found", "share %s not found: %s",
				       req->subpath, err);
			return;
		}
	}
	manifest_init(&m);
	rc = manifest_decode(&m, enc, len);
	free(enc);
	if (rc) {
		ctl_resp_errno(resp, rc, "stored manifest");
		return;
	}
	ctl_resp_json(resp, 200, cn_share_json(cn, &m));
	manifest_free(&m);
}

/* GET /v1/content/stats */
static void api_stats(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	uint64_t used, quota;
	uint32_t n;
	json_t *o;

	cstore_usage(cn->cs, &used, &quota, &n);
	o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i}",
				"served_chunks", (json_int_t)atomic_load(&cn->served_chunks),
				"served_bytes", (json_int_t)atomic_load(&cn->served_bytes),
				"served_infos", (json_int_t)atomic_load(&cn->served_infos),
				"served_manifests", (json_int_t)atomic_load(&cn->served_manifests),
				"busy", (json_int_t)atomic_load(&cn->serve_busy), "not_found",
				(json_int_t)atomic_load(&cn->serve_notfound), "unavailable",
				(json_int_t)atomic_load(&cn->serve_unavailable), "bad_requests",
				(json_int_t)atomic_load(&cn->serve_bad), "announces",
				(json_int_t)atomic_load(&cn->announces), "announce_failures",
				(json_int_t)atomic_load(&cn->announce_fail), "used",
				(json_int_t)used, "quota", (json_int_t)quota, "blobs", (int)n);
	if (o) {
		json_object_set_new(o, "served_haves",
				    json_integer((json_int_t)atomic_load(&cn->served_haves)));
		json_object_set_new(o, "served_peers",
				    json_integer((json_int_t)atomic_load(&cn->served_peers)));
		json_object_set_new(o, "stale",
				    json_integer((json_int_t)atomic_load(&cn->serve_stale)));
		json_object_set_new(o, "queue_full",
				    json_integer((json_int_t)atomic_load(&cn->serve_full)));
		json_object_set_new(o, "peer_full",
				    json_integer((json_int_t)atomic_load(&cn->serve_peer_full)));
		json_object_set_new(o, "stalled_closed",
				    json_integer((json_int_t)atomic_load(&cn->serve_stalled)));
		json_object_set_new(o, "direct_io", json_boolean(cstore_direct_io(cn->cs)));
		json_object_set_new(
		    o, "reads",
		    json_pack("{s:i,s:I,s:I,s:I,s:I}", "threads", (int)cn_readq_threads(cn->rq),
			      "on_threads", (json_int_t)cn_readq_reads(cn->rq), "on_workers",
			      (json_int_t)atomic_load(&cn->serve_reads_worker), "held",
			      (json_int_t)atomic_load(&cn->serve_held), "parked",
			      (json_int_t)atomic_load(&cn->serve_parked)));
		json_object_set_new(o, "blocked",
				    json_pack("{s:i,s:I}", "ids", (int)atomic_load(&cn->nblocked),
					      "refused",
					      (json_int_t)atomic_load(&cn->blocked_refused)));
		json_object_set_new(o, "watch", cn_watch_json(cn));
		json_object_set_new(o, "search",
				    json_pack("{s:I,s:I,s:I}", "indexed",
					      (json_int_t)atomic_load(&cn->search_indexed),
					      "queries",
					      (json_int_t)atomic_load(&cn->search_queries),
					      "deferred",
					      (json_int_t)atomic_load(&cn->search_deferred)));
		json_object_set_new(
		    o, "withdrawn",
		    json_pack("{s:b,s:I,s:I,s:I}", "honoured", cn->honour_withdrawals, "dropped",
			      (json_int_t)atomic_load(&cn->withdrawn_dropped), "kept",
			      (json_int_t)atomic_load(&cn->withdrawn_kept), "refused",
			      (json_int_t)atomic_load(&cn->serve_withdrawn)));
		cn_seed_stats(cn, o);
	}
	ctl_resp_json(resp, 200, o);
}

static void cn_metrics(void *arg, FILE *out)
{
	struct content_node *cn = arg;
	uint64_t used, quota;

	cstore_usage(cn->cs, &used, &quota, NULL);
	fprintf(out,
		"# HELP weft_content_served_chunks_total Chunks served to peers.\n"
		"# TYPE weft_content_served_chunks_total counter\n"
		"weft_content_served_chunks_total %llu\n"
		"# HELP weft_content_served_bytes_total Chunk bytes served to peers.\n"
		"# TYPE weft_content_served_bytes_total counter\n"
		"weft_content_served_bytes_total %llu\n"
		"# HELP weft_content_unavailable_total Chunks refused: failed re-verification or "
		"I/O.\n# TYPE weft_content_unavailable_total counter\n"
		"weft_content_unavailable_total %llu\n"
		"# HELP weft_content_stale_requests_total Requests skipped: their stream was reset "
		"or its connection closed before their turn.\n"
		"# TYPE weft_content_stale_requests_total counter\n"
		"weft_content_stale_requests_total %llu\n"
		"# HELP weft_content_serve_queue_full_total Chunk requests put back unread because "
		"the node's QUIC send queue was full (quic max_queued), tried again 1 ms later.\n"
		"# TYPE weft_content_serve_queue_full_total counter\n"
		"weft_content_serve_queue_full_total %llu\n"
		"# HELP weft_content_serve_peer_full_total Chunk requests passed over because "
		"their connection held its limit of unacknowledged answers (content "
		"serve_peer_held).\n# TYPE weft_content_serve_peer_full_total counter\n"
		"weft_content_serve_peer_full_total %llu\n"
		"# HELP weft_content_serve_stalled_total Connections closed for holding their "
		"limit of answers unacknowledged for content serve_stall_s.\n"
		"# TYPE weft_content_serve_stalled_total counter\n"
		"weft_content_serve_stalled_total %llu\n"
		"# HELP weft_content_serve_file_reads_total Chunks read from their files for "
		"serving, by the thread that read them: a reader thread, or the engine worker "
		"(no reader).\n# TYPE weft_content_serve_file_reads_total counter\n"
		"weft_content_serve_file_reads_total{on=\"reader\"} %llu\n"
		"weft_content_serve_file_reads_total{on=\"worker\"} %llu\n"
		"# HELP weft_content_reader_threads Reader threads started (docs/CONTENT.md "
		"\"Reads off the workers\").\n# TYPE weft_content_reader_threads gauge\n"
		"weft_content_reader_threads %u\n"
		"# HELP weft_content_serve_parked_total Chunk requests parked because their "
		"worker had its reads out, so that requests answered from memory passed them.\n"
		"# TYPE weft_content_serve_parked_total counter\nweft_content_serve_parked_total %llu\n"
		"# HELP weft_content_withdrawn_dropped_total Blobs of withdrawn versions dropped.\n"
		"# TYPE weft_content_withdrawn_dropped_total counter\n"
		"weft_content_withdrawn_dropped_total %llu\n"
		"# HELP weft_content_withdrawn_refused_total Requests for a kept (pinned) blob of a "
		"withdrawn version, refused.\n# TYPE weft_content_withdrawn_refused_total counter\n"
		"weft_content_withdrawn_refused_total %llu\n"
		"# HELP weft_content_store_bytes Bytes counted against the content quota.\n"
		"# TYPE weft_content_store_bytes gauge\nweft_content_store_bytes %llu\n"
		"# HELP weft_content_quota_bytes Content store quota.\n"
		"# TYPE weft_content_quota_bytes gauge\nweft_content_quota_bytes %llu\n",
		(unsigned long long)atomic_load(&cn->served_chunks),
		(unsigned long long)atomic_load(&cn->served_bytes),
		(unsigned long long)atomic_load(&cn->serve_unavailable),
		(unsigned long long)atomic_load(&cn->serve_stale),
		(unsigned long long)atomic_load(&cn->serve_full),
		(unsigned long long)atomic_load(&cn->serve_peer_full),
		(unsigned long long)atomic_load(&cn->serve_stalled),
		(unsigned long long)cn_readq_reads(cn->rq),
		(unsigned long long)atomic_load(&cn->serve_reads_worker), cn_readq_threads(cn->rq),
		(unsigned long long)atomic_load(&cn->serve_parked),
		(unsigned long long)atomic_load(&cn->withdrawn_dropped),
		(unsigned long long)atomic_load(&cn->serve_withdrawn), (unsigned long long)used,
		(unsigned long long)quota);
}

/* ------------------------------------------------------------ lifecycle */

int content_node_new(struct content_node **out, const struct content_node_opts *opts)
{
	struct cstore_opts co = {0};
	struct content_node *cn;
	int rc;

	*out = NULL;
	if (!opts || !opts->store || !opts->state_dir || !opts->quic || !opts->id)
		return -EINVAL;
	cn = calloc(1, sizeof(*cn));
	if (!cn)
		return -ENOMEM;
	pthread_mutex_init(&cn->amu, NULL);
	{
		/* The announcer's waits on the monotonic clock: with the wall
		 * clock stepped back an hour its loop spun a CPU, stepped
		 * forward it slept the hour (test_fault_clock). */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&cn->acond, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&cn->jmu, NULL);
	pthread_mutex_init(&cn->swmu, NULL);
	pthread_mutex_init(&cn->emu, NULL);
	pthread_mutex_init(&cn->auto_mu, NULL);
	cn->store = opts->store;
	cn->quic = opts->quic;
	cn->dht = opts->dht;
	cn->guard = opts->guard;
	cn->honour_withdrawals = !opts->ignore_withdrawals;
	cn->id = opts->id;
	cn->quic_port = opts->quic_port;
	cn->max_parallel = opts->max_parallel ? opts->max_parallel : CONTENT_MAX_PARALLEL;
	if (cn->max_parallel > 80)
		cn->max_parallel = 80; /* request slots: 96 minus INFO/MANIFEST room */
	cn->per_provider = opts->per_provider ? opts->per_provider : CONTENT_PER_PROVIDER;
	cn->req_timeout_ms = opts->req_timeout_ms ? opts->req_timeout_ms : CONTENT_REQ_TIMEOUT_MS;
	cn->peer_held = opts->serve_peer_held ? opts->serve_peer_held : CONTENT_SERVE_PEER_HELD;
	cn->stall_ns = (opts->serve_stall_s ? opts->serve_stall_s : CONTENT_SERVE_STALL_S) *
		       1000000000ull;
#ifdef WEFT_TEST_HOOKS
	if (opts->test_corrupt) {
		cn->test_corrupt = 1;
		log_warn(CN_MOD, "TEST HOOK content test_corrupt: every chunk served is "
				 "corrupted on purpose");
	}
	if (opts->test_serve_delay_ms) {
		cn->test_delay_ms = opts->test_serve_delay_ms;
		log_warn(CN_MOD, "TEST HOOK content test_serve_delay_ms: %u ms per chunk",
			 cn->test_delay_ms);
	}
	if (opts->test_lookup_poll_ms) {
		cn->test_lookup_poll_ms = opts->test_lookup_poll_ms;
		log_warn(CN_MOD,
			 "TEST HOOK content test_lookup_poll_ms: %u ms polls while a "
			 "lookup is out",
			 cn->test_lookup_poll_ms);
	}
#endif
	co.store = opts->store;
	co.dir = opts->state_dir;
	co.quota_bytes = opts->quota_bytes;
	co.direct_io = opts->direct_io;
	co.hot_chunks = opts->hot_chunks;
	co.make_room = cn_make_room; /* pins.c */
	co.room_arg = cn;
	rc = cn_announce_init(cn);
	if (rc)
		goto fail;
	rc = cstore_new(&cn->cs, &co);
	if (rc) {
		log_error(CN_MOD, "chunk store in %s: %s", opts->state_dir, strerror(-rc));
		goto fail;
	}
	rc = cn_shares_init(cn);
	if (!rc)
		rc = cn_pins_init(cn);
	if (!rc) {
		unsigned int tick_ms = 0; /* CN_EV_TICK_MS */

#ifdef WEFT_TEST_HOOKS
		/* ticks far apart: a job's end line must not wait for one */
		if (getenv("WEFT_CONTENT_TEST_EVENT_TICK_MS"))
			tick_ms = (unsigned int)strtoul(getenv("WEFT_CONTENT_TEST_EVENT_TICK_MS"),
							NULL, 10);
#endif
		rc = cn_events_new(&cn->ev, cn, tick_ms);
	}
	if (rc)
		goto fail;
	cn->job_ended = cn_events_ended;
	cn->poll_s = opts->poll_s ? opts->poll_s : CONTENT_POLL_S;
	rc = cn_subs_init(cn, opts->ctl);
	if (!rc)
		rc = cn_search_init(cn, opts->ctl);
	if (!rc)
		rc = cn_block_init(cn);
	if (!rc)
		rc = cn_circles_init(cn, opts->ctl);
	if (!rc)
		rc = cn_groups_init(cn, opts->ctl);
	if (rc)
		goto fail;
	rc = cn_serve_init(cn, opts);
	if (rc) {
		log_error(CN_MOD, "QUIC stream type 0x%x: %s", CONTENT_ST_FETCH, strerror(-rc));
		goto fail;
	}
	rc = cn_watch_init(cn, opts->watch_keepalive_ms,
			   &(const struct cn_watch_subs){cn_subs_followed, cn_subs_pushed,
							    cn_subs_poll_now});
	if (rc) {
		log_error(CN_MOD, "QUIC stream type 0x%x: %s", CONTENT_ST_WATCH, strerror(-rc));
		goto fail;
	}
	if (opts->ctl) {
		ctl_route(opts->ctl, "GET", "/v1/content", api_list, cn);
		ctl_route(opts->ctl, "POST", "/v1/content/add", api_add, cn);
		cn_revoke_routes(cn, opts->ctl);
		ctl_route(opts->ctl, "POST", "/v1/content/get", api_get, cn);
		ctl_route(opts->ctl, "GET", "/v1/content/jobs", api_jobs, cn);
		ctl_route(opts->ctl, "GET", "/v1/content/jobs/", api_jobs, cn);
		ctl_route(opts->ctl, "GET", "/v1/content/shares/", api_share, cn);
		ctl_route(opts->ctl, "GET", "/v1/content/stats", api_stats, cn);
		ctl_metrics(opts->ctl, cn_metrics, cn);
		cn_seed_routes(cn, opts->ctl);
	}
	cn_serve_routes(cn, opts->ctl);
	*out = cn;
	return 0;
fail:
	content_node_free(cn);
	return rc;
}

struct cn_start_ctx {
	struct content_node *cn;
	uint8_t (*priv)[32];
	size_t npriv, cappriv;
	uint8_t (*partial)[32];
	size_t npartial, cappartial;
};

static int collect_private(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct cn_start_ctx *c = arg;
	struct manifest m;

	manifest_init(&m);
	if (manifest_decode(&m, val, vlen) == 0) {
		if (!manifest_announced(&m)) {
			for (uint32_t i = 0; i < m.nitems; i++) {
				if (c->npriv == c->cappriv) {
					size_t nc = c->cappriv ? c->cappriv * 2 : 64;
					void *n = realloc(c->priv, nc * 32);

					if (!n)
						break;
					c->priv = n;
					c->cappriv = nc;
				}
				memcpy(c->priv[c->npriv++], m.items[i].id, 32);
			}
		} else {
			cn_announce(c->cn, m.share_id, MANIFEST_SHARE_ID_LEN);
		}
	}
	manifest_free(&m);
	return 0;
}

static int start_blob(void *arg, const struct cstore_info *info)
{
	struct cn_start_ctx *c = arg;

	if (info->state == CSTORE_PARTIAL) {
		if (c->npartial == c->cappartial) {
			size_t nc = c->cappartial ? c->cappartial * 2 : 16;
			void *n = realloc(c->partial, nc * 32);

			if (!n)
				return 0;
			c->partial = n;
			c->cappartial = nc;
		}
		memcpy(c->partial[c->npartial++], info->id, 32);
		return 0;
	}
	if (info->state != CSTORE_COMPLETE)
		return 0;
	for (size_t i = 0; i < c->npriv; i++)
		if (!memcmp(c->priv[i], info->id, 32))
			return 0; /* only in private shares: not announced */
	cn_announce(c->cn, info->id, 32);
	return 0;
}

int content_node_start(struct content_node *cn)
{
	struct cn_start_ctx c = {.cn = cn};
	int rc;

	if (!cn)
		return -EINVAL;
	rc = cn_serve_start(cn);
	if (rc)
		return rc;
	store_iter(cn->store, cn->shares_dbi, collect_private, &c);
	cstore_list(cn->cs, start_blob, &c);
	rc = cn_announce_start(cn); /* a thread error: positive, as returned below */
	if (rc)
		goto out;
	rc = cn_subs_start(cn);
	if (!rc)
		rc = cn_watch_start(cn);
	if (rc)
		goto out;
	/* Partial downloads resume on their own (kept in the store only). */
	for (size_t i = 0; i < c.npartial; i++) {
		struct cn_get_req *rq = calloc(1, sizeof(*rq));
		uint64_t jid;

		if (!rq)
			break;
		memcpy(rq->id, c.partial[i], 32);
		rq->id_len = 32;
		if (cn_job_start(cn, rq, &jid) == 0)
			log_info(CN_MOD, "resuming a partial download as job %llu",
				 (unsigned long long)jid);
		free(rq);
	}
out:
	free(c.priv);
	free(c.partial);
	return -rc;
}

void content_node_set_lan(struct content_node *cn, content_lan_fn fn, void *arg)
{
	cn->lan_fn = fn;
	cn->lan_arg = arg;
}

void content_node_stop_readers(struct content_node *cn)
{
	if (cn)
		cn_events_stop(cn->ev);
}

void content_node_free(struct content_node *cn)
{
	if (!cn)
		return;
	atomic_store(&cn->stopping, 1);
	cn_watch_free(cn); /* it hands pushes to the subscriptions */
	cn_subs_stop(cn); /* it waits on jobs: first */
	cn_events_stop(cn->ev); /* its readers let go at once */
	cn_jobs_stop(cn);	/* a job's end still tells the hub */
	cn_events_free(cn->ev);
	cn_announce_stop(cn);
	cn_serve_stop(cn);
	cn_search_fini(cn);
	cn_block_fini(cn);
	cstore_free(cn->cs);
	pthread_mutex_destroy(&cn->amu);
	pthread_cond_destroy(&cn->acond);
	pthread_mutex_destroy(&cn->jmu);
	pthread_mutex_destroy(&cn->swmu);
	pthread_mutex_destroy(&cn->emu);
	pthread_mutex_destroy(&cn->auto_mu);
	free(cn);
}
