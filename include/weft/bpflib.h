/* SPDX-License-Identifier: MIT */
/*
 * libbpf and libxdp, loaded (dlopen) when XDP or AF_XDP is first used
 * rather than linked. Linked, they and what they bring (libelf, zlib) cost
 * every weftd ~350 KiB of resident memory at start, and the embedded
 * default (io_uring) never calls them (docs/BENCH.md "bench_mem"); a
 * host without the two packages runs that default.
 *
 * Include this header instead of <bpf/bpf.h>, <bpf/libbpf.h>,
 * <xdp/libxdp.h> and <xdp/xsk.h>, and before a BPF skeleton: each library
 * function weft calls is renamed io_NAME by the macros below, declared
 * under that name by the library's own header (so its type is the
 * library's, checked where io/bpflib.c defines it), and io/bpflib.c's
 * io_NAME calls the library's NAME once both libraries are loaded. A
 * function used from here on must be added to both lists (the linker says
 * which is missing: weftd does not link libbpf).
 */
#ifndef WEFT_BPFLIB_H
#define WEFT_BPFLIB_H

#include <stddef.h>

#if defined(__LIBBPF_BPF_H) || defined(__LIBBPF_LIBBPF_H) || defined(__LIBXDP_LIBXDP_H) ||         \
    defined(__LIBBPF_XSK_H)
#error "weft/bpflib.h must come before the libbpf and libxdp headers"
#endif

/* libbpf */
#define bpf_link_create io_bpf_link_create
#define bpf_map__fd io_bpf_map__fd
#define bpf_map__name io_bpf_map__name
#define bpf_map__pin io_bpf_map__pin
#define bpf_map__reuse_fd io_bpf_map__reuse_fd
#define bpf_map__set_max_entries io_bpf_map__set_max_entries
#define bpf_map_create io_bpf_map_create
#define bpf_map_delete_elem io_bpf_map_delete_elem
#define bpf_map_get_next_key io_bpf_map_get_next_key
#define bpf_map_lookup_batch io_bpf_map_lookup_batch
#define bpf_map_lookup_elem io_bpf_map_lookup_elem
#define bpf_map_update_elem io_bpf_map_update_elem
#define bpf_obj_get io_bpf_obj_get
#define bpf_obj_get_info_by_fd io_bpf_obj_get_info_by_fd
#define bpf_object__destroy_skeleton io_bpf_object__destroy_skeleton
#define bpf_object__load_skeleton io_bpf_object__load_skeleton
#define bpf_object__open_skeleton io_bpf_object__open_skeleton
#define bpf_prog_load io_bpf_prog_load
#define bpf_program__fd io_bpf_program__fd
#define bpf_program__set_autoload io_bpf_program__set_autoload
#define libbpf_num_possible_cpus io_libbpf_num_possible_cpus
/* libxdp */
#define libxdp_get_error io_libxdp_get_error
#define xdp_multiprog__attach_mode io_xdp_multiprog__attach_mode
#define xdp_multiprog__close io_xdp_multiprog__close
#define xdp_multiprog__detach io_xdp_multiprog__detach
#define xdp_multiprog__get_from_ifindex io_xdp_multiprog__get_from_ifindex
#define xdp_multiprog__is_legacy io_xdp_multiprog__is_legacy
#define xdp_multiprog__main_prog io_xdp_multiprog__main_prog
#define xdp_multiprog__next_prog io_xdp_multiprog__next_prog
#define xdp_program__attach io_xdp_program__attach
#define xdp_program__close io_xdp_program__close
#define xdp_program__detach io_xdp_program__detach
#define xdp_program__fd io_xdp_program__fd
#define xdp_program__from_bpf_obj io_xdp_program__from_bpf_obj
#define xdp_program__id io_xdp_program__id
#define xdp_program__name io_xdp_program__name
#define xsk_socket__create io_xsk_socket__create
#define xsk_socket__delete io_xsk_socket__delete
#define xsk_socket__fd io_xsk_socket__fd
#define xsk_umem__create io_xsk_umem__create
#define xsk_umem__delete io_xsk_umem__delete

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

/* The sonames loaded (Debian 12: libbpf1, libxdp1). */
#define IO_BPFLIB_LIBBPF "libbpf.so.1"
#define IO_BPFLIB_LIBXDP "libxdp.so.1"

/*
 * Load libbpf and libxdp now: 0, or -ELIBACC with err (when not NULL)
 * saying which library or function is missing and which packages give it.
 * The first call decides for the process's life (thread-safe); a later call
 * returns the same. Every XDP and AF_XDP entry point calls it first, so
 * the error is the operator's, not a library call's -ENOSYS.
 */
int io_bpflib_load(char *err, size_t errlen);
/* The same with other sonames (tests: a library that is not there). */
int io_bpflib_load_from(const char *libbpf, const char *libxdp, char *err, size_t errlen);
/* 1 when the libraries are mapped in this process (loaded or not tried: 0). */
int io_bpflib_loaded(void);

#endif
