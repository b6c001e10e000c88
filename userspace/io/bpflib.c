// SPDX-License-Identifier: MIT
/*
 * libbpf and libxdp on first use (include/weft/bpflib.h says why and how
 * the names are renamed). Each io_NAME below is the library's NAME with
 * its type (typeof the renamed declaration), called once both libraries
 * are loaded; before that, or when they are missing, it fails as the
 * library fails when the kernel says no: -ENOSYS (errno ENOSYS, NULL for a
 * pointer, nothing for a void). The entry points call io_bpflib_load()
 * first, which says what is missing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "weft/bpflib.h"

#define BPF_FUNCS(X)                                                                               \
	X(bpf_link_create)                                                                         \
	X(bpf_map__fd)                                                                             \
	X(bpf_map__name)                                                                           \
	X(bpf_map__pin)                                                                            \
	X(bpf_map__reuse_fd)                                                                       \
	X(bpf_map__set_max_entries)                                                                \
	X(bpf_map_create)                                                                          \
	X(bpf_map_delete_elem)                                                                     \
	X(bpf_map_get_next_key)                                                                    \
	X(bpf_map_lookup_batch)                                                                    \
	X(bpf_map_lookup_elem)                                                                     \
	X(bpf_map_update_elem)                                                                     \
	X(bpf_obj_get)                                                                             \
	X(bpf_obj_get_info_by_fd)                                                                  \
	X(bpf_object__destroy_skeleton)                                                            \
	X(bpf_object__load_skeleton)                                                               \
	X(bpf_object__open_skeleton)                                                               \
	X(bpf_prog_load)                                                                           \
	X(bpf_program__fd)                                                                         \
	X(bpf_program__set_autoload)                                                               \
	X(libbpf_num_possible_cpus)

#define XDP_FUNCS(X)                                                                               \
	X(libxdp_get_error)                                                                        \
	X(xdp_multiprog__attach_mode)                                                              \
	X(xdp_multiprog__close)                                                                    \
	X(xdp_multiprog__detach)                                                                   \
	X(xdp_multiprog__get_from_ifindex)                                                         \
	X(xdp_multiprog__is_legacy)                                                                \
	X(xdp_multiprog__main_prog)                                                                \
	X(xdp_multiprog__next_prog)                                                                \
	X(xdp_program__attach)                                                                     \
	X(xdp_program__close)                                                                      \
	X(xdp_program__detach)                                                                     \
	X(xdp_program__fd)                                                                         \
	X(xdp_program__from_bpf_obj)                                                               \
	X(xdp_program__id)                                                                         \
	X(xdp_program__name)                                                                       \
	X(xsk_socket__create)                                                                      \
	X(xsk_socket__delete)                                                                      \
	X(xsk_socket__fd)                                                                          \
	X(xsk_umem__create)                                                                        \
	X(xsk_umem__delete)

/* One pointer per function, of the library's type; "name" (# does not
 * expand the macro) is the library's symbol. */
#define FIELD(name) __typeof__(io_##name) *p_##name;
static struct {
	BPF_FUNCS(FIELD)
	XDP_FUNCS(FIELD)
} L;

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static int load_rc = 1; /* 1: not tried; then 0 or -ELIBACC, final */
static int loaded;	/* load_rc == 0, read without the mutex by the wrappers */
static char load_err[256];

static int sym(void *h, const char *lib, const char *name, void **out)
{
	*out = dlsym(h, name);
	if (*out)
		return 0;
	snprintf(load_err, sizeof(load_err), "%s has no %s (libbpf >= 1.0, libxdp >= 1.2)", lib,
		 name);
	return -ELIBACC;
}

static int load_locked(const char *libbpf, const char *libxdp)
{
	void *hb, *hx;

	hb = dlopen(libbpf, RTLD_NOW | RTLD_LOCAL);
	if (!hb) {
		snprintf(load_err, sizeof(load_err), "%s", dlerror());
		return -ELIBACC;
	}
	hx = dlopen(libxdp, RTLD_NOW | RTLD_LOCAL);
	if (!hx) {
		snprintf(load_err, sizeof(load_err), "%s", dlerror());
		dlclose(hb);
		return -ELIBACC;
	}
#define LOAD_BPF(name)                                                                             \
	if (sym(hb, libbpf, #name, (void **)&L.p_##name))                                          \
		goto fail;
#define LOAD_XDP(name)                                                                             \
	if (sym(hx, libxdp, #name, (void **)&L.p_##name))                                          \
		goto fail;
	BPF_FUNCS(LOAD_BPF)
	XDP_FUNCS(LOAD_XDP)
	/* both stay open for the process's life: the pointers live in them */
	return 0;
fail:
	memset(&L, 0, sizeof(L));
	dlclose(hx);
	dlclose(hb);
	return -ELIBACC;
}

int io_bpflib_load_from(const char *libbpf, const char *libxdp, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&load_mu);
	if (load_rc == 1) {
		load_rc = libbpf && libxdp ? load_locked(libbpf, libxdp) : -ELIBACC;
		if (load_rc == -ELIBACC && !load_err[0])
			snprintf(load_err, sizeof(load_err), "no library named");
		__atomic_store_n(&loaded, load_rc == 0, __ATOMIC_RELEASE);
	}
	rc = load_rc;
	if (rc && err && errlen)
		snprintf(err, errlen,
			 "XDP and AF_XDP need libbpf and libxdp (Debian 12: apt-get install "
			 "libbpf1 libxdp1): %s",
			 load_err);
	pthread_mutex_unlock(&load_mu);
	return rc;
}

int io_bpflib_load(char *err, size_t errlen)
{
	if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE))
		return 0;
	return io_bpflib_load_from(IO_BPFLIB_LIBBPF, IO_BPFLIB_LIBXDP, err, errlen);
}

int io_bpflib_loaded(void)
{
	return __atomic_load_n(&loaded, __ATOMIC_ACQUIRE);
}

/* The wrappers: loaded (once) or the failure the library gives. */
static int ready(void)
{
	if (io_bpflib_load(NULL, 0)) {
		errno = ENOSYS;
		return 0;
	}
	return 1;
}

#define CALL(name, fail, ...) return ready() ? L.p_##name(__VA_ARGS__) : (fail)
#define CALL_VOID(name, ...)                                                                       \
	do {                                                                                       \
		if (ready())                                                                       \
			L.p_##name(__VA_ARGS__);                                                   \
	} while (0)

/* ------------------------------------------------------------- libbpf */

int io_bpf_link_create(int prog_fd, int target_fd, enum bpf_attach_type attach_type,
		       const struct bpf_link_create_opts *opts)
{
	CALL(bpf_link_create, -ENOSYS, prog_fd, target_fd, attach_type, opts);
}

int io_bpf_map__fd(const struct bpf_map *map)
{
	CALL(bpf_map__fd, -ENOSYS, map);
}

const char *io_bpf_map__name(const struct bpf_map *map)
{
	CALL(bpf_map__name, NULL, map);
}

int io_bpf_map__pin(struct bpf_map *map, const char *path)
{
	CALL(bpf_map__pin, -ENOSYS, map, path);
}

int io_bpf_map__reuse_fd(struct bpf_map *map, int fd)
{
	CALL(bpf_map__reuse_fd, -ENOSYS, map, fd);
}

int io_bpf_map__set_max_entries(struct bpf_map *map, __u32 max_entries)
{
	CALL(bpf_map__set_max_entries, -ENOSYS, map, max_entries);
}

int io_bpf_map_create(enum bpf_map_type map_type, const char *map_name, __u32 key_size,
		      __u32 value_size, __u32 max_entries, const struct bpf_map_create_opts *opts)
{
	CALL(bpf_map_create, -ENOSYS, map_type, map_name, key_size, value_size, max_entries, opts);
}

int io_bpf_map_delete_elem(int fd, const void *key)
{
	CALL(bpf_map_delete_elem, -ENOSYS, fd, key);
}

int io_bpf_map_get_next_key(int fd, const void *key, void *next_key)
{
	CALL(bpf_map_get_next_key, -ENOSYS, fd, key, next_key);
}

int io_bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values,
			    __u32 *count, const struct bpf_map_batch_opts *opts)
{
	CALL(bpf_map_lookup_batch, -ENOSYS, fd, in_batch, out_batch, keys, values, count, opts);
}

int io_bpf_map_lookup_elem(int fd, const void *key, void *value)
{
	CALL(bpf_map_lookup_elem, -ENOSYS, fd, key, value);
}

int io_bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags)
{
	CALL(bpf_map_update_elem, -ENOSYS, fd, key, value, flags);
}

int io_bpf_obj_get(const char *pathname)
{
	CALL(bpf_obj_get, -ENOSYS, pathname);
}

int io_bpf_obj_get_info_by_fd(int bpf_fd, void *info, __u32 *info_len)
{
	CALL(bpf_obj_get_info_by_fd, -ENOSYS, bpf_fd, info, info_len);
}

void io_bpf_object__destroy_skeleton(struct bpf_object_skeleton *s)
{
	CALL_VOID(bpf_object__destroy_skeleton, s);
}

int io_bpf_object__load_skeleton(struct bpf_object_skeleton *s)
{
	CALL(bpf_object__load_skeleton, -ENOSYS, s);
}

int io_bpf_object__open_skeleton(struct bpf_object_skeleton *s,
				 const struct bpf_object_open_opts *opts)
{
	CALL(bpf_object__open_skeleton, -ENOSYS, s, opts);
}

int io_bpf_prog_load(enum bpf_prog_type prog_type, const char *prog_name, const char *license,
		     const struct bpf_insn *insns, size_t insn_cnt,
		     const struct bpf_prog_load_opts *opts)
{
	CALL(bpf_prog_load, -ENOSYS, prog_type, prog_name, license, insns, insn_cnt, opts);
}

int io_bpf_program__fd(const struct bpf_program *prog)
{
	CALL(bpf_program__fd, -ENOSYS, prog);
}

int io_bpf_program__set_autoload(struct bpf_program *prog, bool autoload)
{
	CALL(bpf_program__set_autoload, -ENOSYS, prog, autoload);
}

int io_libbpf_num_possible_cpus(void)
{
	return ready() ? L.p_libbpf_num_possible_cpus() : -ENOSYS;
}

/* ------------------------------------------------------------- libxdp */

long io_libxdp_get_error(const void *ptr)
{
	/* NULL is an error in libxdp's sense too (errno says which) */
	if (!ready())
		return ptr ? 0 : -ENOSYS;
	return L.p_libxdp_get_error(ptr);
}

enum xdp_attach_mode io_xdp_multiprog__attach_mode(const struct xdp_multiprog *mp)
{
	CALL(xdp_multiprog__attach_mode, XDP_MODE_UNSPEC, mp);
}

void io_xdp_multiprog__close(struct xdp_multiprog *mp)
{
	CALL_VOID(xdp_multiprog__close, mp);
}

int io_xdp_multiprog__detach(struct xdp_multiprog *mp)
{
	CALL(xdp_multiprog__detach, -ENOSYS, mp);
}

struct xdp_multiprog *io_xdp_multiprog__get_from_ifindex(int ifindex)
{
	CALL(xdp_multiprog__get_from_ifindex, NULL, ifindex);
}

bool io_xdp_multiprog__is_legacy(const struct xdp_multiprog *mp)
{
	CALL(xdp_multiprog__is_legacy, false, mp);
}

struct xdp_program *io_xdp_multiprog__main_prog(const struct xdp_multiprog *mp)
{
	CALL(xdp_multiprog__main_prog, NULL, mp);
}

struct xdp_program *io_xdp_multiprog__next_prog(const struct xdp_program *prog,
						const struct xdp_multiprog *mp)
{
	CALL(xdp_multiprog__next_prog, NULL, prog, mp);
}

int io_xdp_program__attach(struct xdp_program *xdp_prog, int ifindex, enum xdp_attach_mode mode,
			   unsigned int flags)
{
	CALL(xdp_program__attach, -ENOSYS, xdp_prog, ifindex, mode, flags);
}

void io_xdp_program__close(struct xdp_program *xdp_prog)
{
	CALL_VOID(xdp_program__close, xdp_prog);
}

int io_xdp_program__detach(struct xdp_program *xdp_prog, int ifindex, enum xdp_attach_mode mode,
			   unsigned int flags)
{
	CALL(xdp_program__detach, -ENOSYS, xdp_prog, ifindex, mode, flags);
}

int io_xdp_program__fd(const struct xdp_program *xdp_prog)
{
	CALL(xdp_program__fd, -ENOSYS, xdp_prog);
}

struct xdp_program *io_xdp_program__from_bpf_obj(struct bpf_object *obj, const char *section_name)
{
	CALL(xdp_program__from_bpf_obj, NULL, obj, section_name);
}

uint32_t io_xdp_program__id(const struct xdp_program *xdp_prog)
{
	CALL(xdp_program__id, 0, xdp_prog);
}

const char *io_xdp_program__name(const struct xdp_program *xdp_prog)
{
	CALL(xdp_program__name, NULL, xdp_prog);
}

int io_xsk_socket__create(struct xsk_socket **xsk, const char *ifname, __u32 queue_id,
			  struct xsk_umem *umem, struct xsk_ring_cons *rx, struct xsk_ring_prod *tx,
			  const struct xsk_socket_config *config)
{
	CALL(xsk_socket__create, -ENOSYS, xsk, ifname, queue_id, umem, rx, tx, config);
}

void io_xsk_socket__delete(struct xsk_socket *xsk)
{
	CALL_VOID(xsk_socket__delete, xsk);
}

int io_xsk_socket__fd(const struct xsk_socket *xsk)
{
	CALL(xsk_socket__fd, -ENOSYS, xsk);
}

int io_xsk_umem__create(struct xsk_umem **umem, void *umem_area, __u64 size,
			struct xsk_ring_prod *fill, struct xsk_ring_cons *comp,
			const struct xsk_umem_config *config)
{
	CALL(xsk_umem__create, -ENOSYS, umem, umem_area, size, fill, comp, config);
}

int io_xsk_umem__delete(struct xsk_umem *umem)
{
	CALL(xsk_umem__delete, -ENOSYS, umem);
}
