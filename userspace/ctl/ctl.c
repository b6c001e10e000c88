// SPDX-License-Identifier: MIT
/*
 * Control API server: libmicrohttpd on a unix socket we create (mode 0600),
 * one thread per connection up to max_conns, an idle timeout per connection,
 * a header memory cap (431) and a body cap (413). Handlers are plain
 * functions on a route table that is fixed before ctl_start().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "weft/ctl.h"
#include "weft/ctl_drain.h"
#include "weft/log.h"
#include "weft/util.h"

#define CTL_MAX_ROUTES 128
#define CTL_MAX_METRICS 32

static void ctl_own_metrics(void *arg, FILE *out);

struct ctl_route {
	char method[8];
	char prefix[96];
	size_t plen;
	int subtree;
	ctl_handler_fn fn;
	void *arg;
};

struct ctl_metric {
	ctl_metrics_fn fn;
	void *arg;
};

/* Upper bounds (seconds) of the request latency histogram's buckets. */
#define CTL_LAT_BUCKETS 9
static const double ctl_lat_le[CTL_LAT_BUCKETS] = {0.0005, 0.001, 0.005, 0.01, 0.05,
						   0.1,    0.5,   1,     5};

struct ctl {
	struct ctl_opts opts;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t sock_dev; /* the socket file ctl_bind made (ino 0: none) */
	ino_t sock_ino;
	int fd;
	struct MHD_Daemon *mhd;
	struct ctl_drain *drain; /* the connections, closed before the stop */
	struct ctl_route routes[CTL_MAX_ROUTES];
	unsigned int nroutes;
	struct ctl_metric metrics[CTL_MAX_METRICS];
	unsigned int nmetrics;
	/* requests answered, by status class 1xx..5xx (index 1..5) */
	_Atomic unsigned long long answered[6];
	/* request latency histogram (weft_ctl_request_duration_seconds):
	 * per-bucket counts (not cumulative), sum in microseconds */
	_Atomic unsigned long long lat_bucket[CTL_LAT_BUCKETS + 1];
	_Atomic unsigned long long lat_sum_us;
	struct log_ctx *log; /* the creator's log context, bound in control threads */
};

/* Per-request state, kept across MHD's calls for one request. */
struct ctl_conn {
	uint64_t t0_ns; /* first call for this request */
	uint8_t *body;
	size_t len, cap;
	int too_large;
};

void ctl_resp_json(struct ctl_resp *resp, int status, json_t *obj)
{
	json_decref(resp->json);
	resp->status = status;
	resp->json = obj;
}

void ctl_resp_error(struct ctl_resp *resp, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	if (!o) {
		/* Not UTF-8 (bytes of a request path, or a character cut by the
		 * truncation above): JSON strings cannot carry it, and without
		 * this the client got a 500 instead of this answer. */
		for (char *c = msg; *c; c++)
			if ((unsigned char)*c >= 0x80)
				*c = '?';
		o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	}
	ctl_resp_json(resp, status, o);
}

/* The HTTP status and error code of a negative errno (ctl_resp_errno). */
static int errno_status(int err, const char **code)
{
	int e = err < 0 ? -err : err;
	int status = 500;

	*code = "internal";
	switch (e) {
	case EINVAL:
	case EBADMSG:
	case ERANGE:
	case EPROTO:
		status = 400, *code = "bad_request";
		break;
	case ENOENT:
		status = 404, *code = "not_found";
		break;
	case EEXIST:
		status = 409, *code = "exists";
		break;
	case EPERM:
	case EACCES:
		status = 403, *code = "forbidden";
		break;
	/* The disk under the state directory, the store's LMDB map
	 * (store.map_size), the content quota or a fixed-size table full:
	 * 507 Insufficient Storage, not a retry-later 503 (the same request
	 * fails until space is freed or a limit raised). */
	case ENOSPC:
	case EDQUOT:
		status = 507, *code = "no_space";
		break;
	case EAGAIN:
	case EBUSY:
		status = 503, *code = "unavailable";
		break;
	/* the node is stopping: its DHT lookups were cancelled, its engine
	 * takes no more work */
	case ESHUTDOWN:
	case ECANCELED:
		status = 503, *code = "shutting_down";
		break;
	case ETIMEDOUT:
		status = 504, *code = "timeout";
		break;
	case EMSGSIZE:
		status = 413, *code = "too_large";
		break;
	case EOPNOTSUPP:
		status = 501, *code = "not_supported";
		break;
	/* a sealed share whose content key is not wrapped for this node */
	case ENOKEY:
		status = 403, *code = "not_a_recipient";
		break;
	}
	return status;
}

const char *ctl_errno_code(int err)
{
	const char *code;

	errno_status(err, &code);
	return code;
}

void ctl_resp_errno(struct ctl_resp *resp, int err, const char *what)
{
	int e = err < 0 ? -err : err;
	const char *code;
	int status = errno_status(err, &code);

	ctl_resp_error(resp, status, code, "%s: %s", what, strerror(e));
}

static const char *file_kind(mode_t m)
{
	if (S_ISLNK(m))
		return "symbolic link";
	if (S_ISREG(m))
		return "regular file";
	if (S_ISDIR(m))
		return "directory";
	if (S_ISFIFO(m))
		return "FIFO";
	return "special file";
}

/*
 * Remove a stale socket file at the path, and only that: lstat (a symlink
 * is not followed), anything but a socket is refused with -ENOTSOCK and
 * left untouched, a socket something still answers on is -EADDRINUSE.
 */
static int ctl_remove_stale(struct ctl *ctl, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd;

	if (lstat(ctl->path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_error("ctl", "%s exists and is a %s, not a socket: not touching it", ctl->path,
			  file_kind(st.st_mode));
		return -ENOTSOCK;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0) {
		close(fd);
		return -EADDRINUSE;
	}
	close(fd);
	if (unlink(ctl->path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Remove the socket file if it is still the one ctl_bind created. */
static void ctl_unlink_own(struct ctl *ctl)
{
	struct stat st;

	if (lstat(ctl->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == ctl->sock_dev &&
	    st.st_ino == ctl->sock_ino)
		unlink(ctl->path);
}

/*
 * Bind the control socket, mode 0600 (0660 when asked), without touching the process-wide
 * umask (other threads and other nodes in the process create files too):
 * bind, then chmod the path (AT_SYMLINK_NOFOLLOW: never through a symlink
 * put there meanwhile), then listen. Until listen() every connect() is
 * refused (ECONNREFUSED), so the mode the umask gave the file for that
 * moment grants nobody anything: race-free. The socket's identity
 * (device, inode) is kept so that ctl_free removes this socket only.
 */
static int ctl_bind(struct ctl *ctl)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, err;

	if (strlen(ctl->path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, ctl->path);
	err = ctl_remove_stale(ctl, &sun);
	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	/* A failure before the identity is known leaves the path alone: it
	 * may no longer be ours. */
	if (fchmodat(AT_FDCWD, ctl->path, ctl->opts.mode, AT_SYMLINK_NOFOLLOW) < 0 ||
	    lstat(ctl->path, &st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISSOCK(st.st_mode)) {
		close(fd); /* replaced between bind and chmod */
		return -ENOTSOCK;
	}
	ctl->sock_dev = st.st_dev;
	ctl->sock_ino = st.st_ino;
	if (listen(fd, 128) < 0) {
		err = -errno;
		close(fd);
		ctl_unlink_own(ctl);
		return err;
	}
	ctl->fd = fd;
	return 0;
}


int ctl_new(struct ctl **out, const struct ctl_opts *opts)
{
	struct ctl *ctl;
	int err;

	*out = NULL;
	if (!opts->socket_path || !opts->socket_path[0] ||
	    (opts->mode && opts->mode != 0600 && opts->mode != 0660))
		return -EINVAL;
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->fd = -1;
	ctl->log = log_current();
	ctl->opts = *opts;
	ctl->opts.socket_path = ctl->path;
	if (!ctl->opts.mode)
		ctl->opts.mode = 0600;
	if (!ctl->opts.max_body)
		ctl->opts.max_body = 1U << 20;
	if (!ctl->opts.max_header)
		ctl->opts.max_header = 16U << 10;
	if (!ctl->opts.max_conns)
		ctl->opts.max_conns = 64;
	if (!ctl->opts.timeout_s)
		ctl->opts.timeout_s = 10;
	if (strlen(opts->socket_path) >= sizeof(ctl->path)) {
		free(ctl);
		return -ENAMETOOLONG;
	}
	strcpy(ctl->path, opts->socket_path);
	ctl_metrics(ctl, ctl_own_metrics, ctl);
	err = ctl_bind(ctl);
	if (err) {
		free(ctl);
		return err;
	}
	*out = ctl;
	return 0;
}

int ctl_route(struct ctl *ctl, const char *method, const char *prefix, ctl_handler_fn fn, void *arg)
{
	struct ctl_route *r;

	if (ctl->mhd || strlen(method) >= sizeof(r->method) || strlen(prefix) >= sizeof(r->prefix))
		return -EINVAL;
	if (ctl->nroutes >= CTL_MAX_ROUTES)
		return -ENOSPC;
	r = &ctl->routes[ctl->nroutes++];
	strcpy(r->method, method);
	strcpy(r->prefix, prefix);
	r->plen = strlen(prefix);
	r->subtree = r->plen && prefix[r->plen - 1] == '/';
	r->fn = fn;
	r->arg = arg;
	return 0;
}

int ctl_metrics(struct ctl *ctl, ctl_metrics_fn fn, void *arg)
{
	if (ctl->nmetrics >= CTL_MAX_METRICS)
		return -ENOSPC;
	ctl->metrics[ctl->nmetrics].fn = fn;
	ctl->metrics[ctl->nmetrics].arg = arg;
	ctl->nmetrics++;
	return 0;
}

const char *ctl_req_query(const struct ctl_req *req, const char *key)
{
	if (!req->conn)
		return NULL;
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

static void ctl_serve_metrics(struct ctl *ctl, struct ctl_resp *resp)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f) {
		ctl_resp_errno(resp, -errno, "metrics");
		return;
	}
	for (unsigned int i = 0; i < ctl->nmetrics; i++)
		ctl->metrics[i].fn(ctl->metrics[i].arg, f);
	fclose(f);
	resp->status = 200;
	resp->text = buf;
	resp->text_len = len;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

void ctl_resp_store_error(struct ctl_resp *resp, int err, const char *what)
{
	int e = err < 0 ? -err : err;

	if (e == EINVAL || e == ENOENT || e == EEXIST) {
		ctl_resp_errno(resp, err, what);
		return;
	}
	/* The disk or the LMDB map full: repeating the request does not
	 * help until space is freed or store.map_size raised. */
	if (e == ENOSPC || e == EDQUOT) {
		ctl_resp_error(resp, 507, "no_space",
			       "%s, but not stored: %s (free space under the state directory, "
			       "or raise store.map_size)",
			       what, strerror(e));
		return;
	}
	ctl_resp_error(resp, 503, "not_durable",
		       "%s, but not stored durably (%s): repeat the request", what,
		       e == ETIMEDOUT ? "the store did not commit in time"
		       : e == EAGAIN  ? "the store's write queue is full"
				      : strerror(e));
}

void ctl_dispatch(struct ctl *ctl, const struct ctl_req *req, struct ctl_resp *resp)
{
	const struct ctl_route *best = NULL;
	int path_known = 0;
	struct ctl_req r = *req;

	if (strcmp(req->path, "/metrics") == 0) {
		if (strcmp(req->method, "GET")) {
			ctl_resp_error(resp, 405, "method_not_allowed", "use GET on /metrics");
			return;
		}
		ctl_serve_metrics(ctl, resp);
		return;
	}
	for (unsigned int i = 0; i < ctl->nroutes; i++) {
		const struct ctl_route *rt = &ctl->routes[i];
		int match = rt->subtree ? strncmp(req->path, rt->prefix, rt->plen) == 0
					: strcmp(req->path, rt->prefix) == 0;

		if (!match)
			continue;
		path_known = 1;
		if (strcmp(rt->method, req->method))
			continue;
		if (!best || rt->plen > best->plen)
			best = rt;
	}
	if (!best) {
		if (path_known)
			ctl_resp_error(resp, 405, "method_not_allowed", "%s not allowed on %s",
				       req->method, req->path);
		else
			ctl_resp_error(resp, 404, "not_found", "no such endpoint: %s", req->path);
		return;
	}
	r.subpath = req->path + (best->subtree ? best->plen : strlen(req->path));
	resp->status = 200;
	best->fn(best->arg, &r, resp);
	if (!resp->json && !resp->text && !resp->upgrade && !resp->stream_read)
		ctl_resp_error(resp, 500, "internal", "handler produced no response");
}

struct ctl_up {
	void (*fn)(void *arg, int fd, const uint8_t *extra, size_t extra_len, void *handle);
	void *arg;
};

static void ctl_upgraded(void *cls, struct MHD_Connection *conn, void *req_cls,
			 const char *extra_in, size_t extra_in_size, MHD_socket sock,
			 struct MHD_UpgradeResponseHandle *urh)
{
	struct ctl_up *u = cls;

	(void)conn;
	(void)req_cls;
	u->fn(u->arg, sock, (const uint8_t *)extra_in, extra_in_size, urh);
	free(u);
}

void ctl_upgrade_done(void *handle)
{
	MHD_upgrade_action(handle, MHD_UPGRADE_ACTION_CLOSE);
}

const char *ctl_req_header(const struct ctl_req *req, const char *name)
{
	return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

static enum MHD_Result ctl_send_upgrade(struct MHD_Connection *conn, struct ctl_resp *resp)
{
	struct ctl_up *u = malloc(sizeof(*u));
	struct MHD_Response *mr;
	enum MHD_Result ret;
	char *colon;

	if (!u)
		return MHD_NO;
	u->fn = resp->upgrade;
	u->arg = resp->upgrade_arg;
	mr = MHD_create_response_for_upgrade(ctl_upgraded, u);
	if (!mr) {
		free(u);
		return MHD_NO;
	}
	MHD_add_response_header(mr, "Upgrade", resp->upgrade_proto ? resp->upgrade_proto : "");
	MHD_add_response_header(mr, "Connection", "Upgrade");
	colon = strchr(resp->header, ':');
	if (colon && colon[1] == ' ') {
		*colon = 0;
		MHD_add_response_header(mr, resp->header, colon + 2);
	}
	ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, mr);
	MHD_destroy_response(mr);
	return ret;
}

/* A streamed answer (ctl_resp.stream_read) through MHD's reader callback. */
struct ctl_stream {
	long (*read)(void *arg, char *buf, size_t max);
	void (*done)(void *arg);
	void *arg;
};

static ssize_t ctl_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct ctl_stream *s = cls;
	long n;

	(void)pos;
	n = s->read(s->arg, buf, max);
	if (n == -1)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return (ssize_t)n;
}

static void ctl_stream_free(void *cls)
{
	struct ctl_stream *s = cls;

	if (s->done)
		s->done(s->arg);
	free(s);
}

static enum MHD_Result ctl_send_stream(struct MHD_Connection *conn, struct ctl_resp *resp)
{
	struct ctl_stream *s = calloc(1, sizeof(*s));
	struct MHD_Response *mr;
	enum MHD_Result ret;

	if (!s) {
		if (resp->stream_done)
			resp->stream_done(resp->stream_arg);
		return MHD_NO;
	}
	s->read = resp->stream_read;
	s->done = resp->stream_done;
	s->arg = resp->stream_arg;
	resp->stream_read = NULL;
	resp->stream_done = NULL;
	mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, ctl_stream_read, s,
					       ctl_stream_free);
	if (!mr) {
		ctl_stream_free(s);
		return MHD_NO;
	}
	MHD_add_response_header(mr, "Content-Type",
				resp->content_type ? resp->content_type : "application/x-ndjson");
	MHD_add_response_header(mr, "Cache-Control", "no-store");
	ret = MHD_queue_response(conn, (unsigned int)resp->status, mr);
	MHD_destroy_response(mr);
	return ret;
}

static enum MHD_Result ctl_send(struct MHD_Connection *conn, struct ctl_resp *resp)
{
	struct MHD_Response *mr;
	enum MHD_Result ret;
	char *body;
	size_t len;
	const char *ctype;

	if (resp->upgrade && resp->status == 101)
		return ctl_send_upgrade(conn, resp);
	if (!resp->json && !resp->text && resp->stream_read)
		return ctl_send_stream(conn, resp);
	if (resp->stream_done) { /* a handler that set both: the stream is not sent */
		resp->stream_done(resp->stream_arg);
		resp->stream_done = NULL;
		resp->stream_read = NULL;
	}
	if (resp->json) {
		body = json_dumps(resp->json, JSON_COMPACT);
		if (!body)
			return MHD_NO;
		len = strlen(body);
		/* newline-terminated, so curl output reads well */
		char *nb = realloc(body, len + 2);

		if (!nb) {
			free(body);
			return MHD_NO;
		}
		body = nb;
		body[len++] = '\n';
		body[len] = '\0';
		ctype = "application/json";
	} else {
		body = resp->text;
		len = resp->text_len;
		resp->text = NULL;
		ctype = resp->content_type ? resp->content_type : "text/plain";
	}
	mr = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!mr) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(mr, "Content-Type", ctype);
	ret = MHD_queue_response(conn, (unsigned int)resp->status, mr);
	MHD_destroy_response(mr);
	return ret;
}

static void ctl_count(struct ctl *ctl, int status, uint64_t t0_ns)
{
	int cls = status / 100;
	uint64_t us = (util_now_ns() - t0_ns) / 1000;
	unsigned int b = 0;

	if (cls >= 1 && cls <= 5)
		atomic_fetch_add_explicit(&ctl->answered[cls], 1, memory_order_relaxed);
	while (b < CTL_LAT_BUCKETS && (double)us / 1e6 > ctl_lat_le[b])
		b++;
	atomic_fetch_add_explicit(&ctl->lat_bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&ctl->lat_sum_us, us, memory_order_relaxed);
}

static void ctl_own_metrics(void *arg, FILE *out)
{
	struct ctl *ctl = arg;

	fprintf(out,
		"# HELP weft_ctl_requests_total Control API requests answered, by status class.\n"
		"# TYPE weft_ctl_requests_total counter\n");
	for (int i = 1; i <= 5; i++)
		fprintf(out, "weft_ctl_requests_total{class=\"%dxx\"} %llu\n", i,
			atomic_load_explicit(&ctl->answered[i], memory_order_relaxed));
	/* A request being measured right now may show in a bucket and not yet
	 * in the sum: each value is read once, the buckets cumulated here. */
	unsigned long long cum = 0;

	fprintf(out, "# HELP weft_ctl_request_duration_seconds Control API request latency, "
		     "from its first byte to the answer queued.\n"
		     "# TYPE weft_ctl_request_duration_seconds histogram\n");
	for (int b = 0; b <= CTL_LAT_BUCKETS; b++) {
		cum += atomic_load_explicit(&ctl->lat_bucket[b], memory_order_relaxed);
		if (b < CTL_LAT_BUCKETS)
			fprintf(out, "weft_ctl_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
				ctl_lat_le[b], cum);
		else
			fprintf(out, "weft_ctl_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
				cum);
	}
	fprintf(out, "weft_ctl_request_duration_seconds_sum %.6f\n"
		     "weft_ctl_request_duration_seconds_count %llu\n",
		(double)atomic_load_explicit(&ctl->lat_sum_us, memory_order_relaxed) / 1e6, cum);
}

static void ctl_resp_clear(struct ctl_resp *resp)
{
	if (resp->stream_done)
		resp->stream_done(resp->stream_arg);
	json_decref(resp->json);
	free(resp->text);
	memset(resp, 0, sizeof(*resp));
}

static enum MHD_Result ctl_access(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct ctl *ctl = cls;
	struct ctl_conn *cc = *con_cls;
	struct ctl_resp resp = {0};
	enum MHD_Result ret;

	/* libmicrohttpd's threads are not ours: log with the node's context,
	 * and hand back their malloc arena's top when they end */
	if (log_current() != ctl->log)
		log_bind(ctl->log);
	util_heap_release_at_exit();
	if (!cc) {
		const char *cl;

		cc = calloc(1, sizeof(*cc));
		if (!cc)
			return MHD_NO;
		cc->t0_ns = util_now_ns();
		*con_cls = cc;
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > ctl->opts.max_body)
			cc->too_large = 1;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (cc->too_large || cc->len + n > ctl->opts.max_body) {
			cc->too_large = 1;
			return MHD_YES; /* discard; answer 413 at the end */
		}
		if (cc->len + n > cc->cap) {
			size_t cap = cc->cap ? cc->cap : 4096;
			uint8_t *nb;

			while (cap < cc->len + n)
				cap *= 2;
			if (cap > ctl->opts.max_body)
				cap = ctl->opts.max_body;
			nb = realloc(cc->body, cap);
			if (!nb)
				return MHD_NO;
			cc->body = nb;
			cc->cap = cap;
		}
		memcpy(cc->body + cc->len, upload_data, n);
		cc->len += n;
		return MHD_YES;
	}
	if (cc->too_large) {
		ctl_resp_error(&resp, 413, "too_large", "request body over %zu bytes",
			       ctl->opts.max_body);
	} else {
		struct ctl_req req = {
		    .method = method,
		    .path = url,
		    .body = cc->body,
		    .body_len = cc->len,
		    .conn = conn,
		};
		json_error_t jerr;

		if (cc->len) {
			req.json = json_loadb((const char *)cc->body, cc->len,
					      JSON_REJECT_DUPLICATES, &jerr);
			const char *ct =
			    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
			if (!req.json && ct && strncmp(ct, "application/json", 16) == 0) {
				ctl_resp_error(&resp, 400, "bad_json", "malformed JSON body: %s",
					       jerr.text);
				goto send;
			}
		}
		ctl_dispatch(ctl, &req, &resp);
		json_decref(req.json);
	}
send:
	ctl_count(ctl, resp.status, cc->t0_ns);
	if (log_get_level() >= LOG_LVL_DEBUG) {
		char path[129];
		size_t i;

		/* the path as sent, control bytes masked: no forged log lines */
		for (i = 0; url[i] && i < sizeof(path) - 1; i++)
			path[i] = url[i] >= 0x20 && url[i] < 0x7f ? url[i] : '?';
		path[i] = '\0';
		log_debug("ctl", "%s %s -> %d", method, path, resp.status);
	}
	ret = ctl_send(conn, &resp);
	ctl_resp_clear(&resp);
	return ret;
}

static void ctl_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			  enum MHD_RequestTerminationCode toe)
{
	struct ctl_conn *cc = *con_cls;

	if (cc) {
		free(cc->body);
		free(cc);
		*con_cls = NULL;
	}
}

/* libmicrohttpd's own messages: fmt is its format string, not ours. */
static void ctl_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void ctl_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("ctl", "%s", msg);
}

/*
 * Control connections never take the last descriptors: at the open-file
 * limit libmicrohttpd's listen thread spins on accept() failing with
 * EMFILE (a whole CPU, test_fault_fds), while at its connection limit it
 * stops polling the socket until a connection ends. So the connection
 * limit is at most half the descriptors free when the server starts (the
 * rest for blobs, the store and sockets), and at least 4.
 */
static unsigned int conns_within_fd_limit(unsigned int want)
{
	struct rlimit rl;
	unsigned int used = 0, avail;
	DIR *d;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return want;
	d = opendir("/proc/self/fd");
	if (!d)
		return want;
	while (readdir(d))
		used++;
	closedir(d);
	avail = rl.rlim_cur > used ? (unsigned int)((rl.rlim_cur - used) / 2) : 0;
	if (avail < 4)
		avail = 4;
	return want < avail ? want : avail;
}

int ctl_start(struct ctl *ctl)
{
	unsigned int conns = conns_within_fd_limit(ctl->opts.max_conns);
	int err;

	if (conns < ctl->opts.max_conns)
		log_warn("ctl",
			 "at most %u control connections at once (ctl.max_conns %u): the open-file "
			 "limit leaves few descriptors (raise it: ulimit -n, LimitNOFILE=)",
			 conns, ctl->opts.max_conns);
	err = ctl_drain_new(&ctl->drain, conns, "control API");
	if (err)
		return err;
	ctl->mhd = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG |
		MHD_USE_POLL | MHD_ALLOW_UPGRADE,
	    0, NULL, NULL, ctl_access, ctl, MHD_OPTION_EXTERNAL_LOGGER, ctl_mhd_log, ctl,
	    MHD_OPTION_LISTEN_SOCKET, ctl->fd, MHD_OPTION_CONNECTION_LIMIT, conns,
	    MHD_OPTION_CONNECTION_TIMEOUT, ctl->opts.timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)ctl->opts.max_header, MHD_OPTION_NOTIFY_COMPLETED, ctl_completed, ctl,
	    MHD_OPTION_NOTIFY_CONNECTION, ctl_drain_notify, ctl->drain, MHD_OPTION_END);
	if (!ctl->mhd) {
		ctl_drain_free(ctl->drain);
		ctl->drain = NULL;
		return -EIO;
	}
	return 0;
}

void ctl_free(struct ctl *ctl)
{
	if (!ctl)
		return;
	if (ctl->mhd)
		/* open connections end first (ctl_drain.h); MHD_stop_daemon
		 * closes the listen socket */
		ctl_drain_stop(ctl->drain, ctl->mhd, CTL_DRAIN_STOP_MS);
	else if (ctl->fd >= 0)
		close(ctl->fd);
	ctl_drain_free(ctl->drain);
	if (ctl->sock_ino)
		ctl_unlink_own(ctl);
	free(ctl);
}
