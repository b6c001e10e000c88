// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Micro-costs of the operations weft's XDP program is made of (issue 29):
 * one program per operation, each doing it once (_1) or eight times (_8),
 * run under BPF_PROG_TEST_RUN by bench/xdp_micro.sh. Not shipped: the
 * product program is bpf/weft_xdp.bpf.c. Per operation = (ns(_8) -
 * ns(empty)) / 8; ns(_1) - ns(empty) as a check. The key of each lookup
 * depends on the previous result so clang cannot merge the eight.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} m_arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} m_cnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} m_pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} m_hash SEC(".maps");

/* 16-byte key: weft's source key (struct wxdp_src_key). */
struct k16 {
	__u64 a, b;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct k16);
	__type(value, __u64);
} m_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} m_xsk SEC(".maps");

/* key 0 is present in every map (xdp_micro.sh fills it); v is 0 there. */
#define LOOKUP_N(map, n)                                                        \
	({                                                                      \
		__u32 k_ = 0;                                                   \
		__u64 *v_;                                                      \
		int i_;                                                         \
		for (i_ = 0; i_ < (n); i_++) {                                  \
			v_ = bpf_map_lookup_elem(&map, &k_);                    \
			if (!v_)                                                \
				return XDP_ABORTED;                             \
			k_ = (__u32)*v_;                                        \
		}                                                               \
		XDP_PASS;                                                       \
	})

SEC("xdp") int empty(struct xdp_md *ctx) { return XDP_PASS; }

SEC("xdp") int arr_1(struct xdp_md *ctx) { return LOOKUP_N(m_arr, 1); }
SEC("xdp") int arr_8(struct xdp_md *ctx) { return LOOKUP_N(m_arr, 8); }
SEC("xdp") int pcpu_1(struct xdp_md *ctx) { return LOOKUP_N(m_pcpu, 1); }
SEC("xdp") int pcpu_8(struct xdp_md *ctx) { return LOOKUP_N(m_pcpu, 8); }
SEC("xdp") int hash_1(struct xdp_md *ctx) { return LOOKUP_N(m_hash, 1); }
SEC("xdp") int hash_8(struct xdp_md *ctx) { return LOOKUP_N(m_hash, 8); }

static __always_inline int lru_n(int n)
{
	struct k16 k = {};
	__u64 *v;
	int i;

	for (i = 0; i < n; i++) {
		v = bpf_map_lookup_elem(&m_lru, &k);
		if (!v)
			return XDP_ABORTED;
		k.a = *v;
	}
	return XDP_PASS;
}

SEC("xdp") int lru_1(struct xdp_md *ctx) { return lru_n(1); }
SEC("xdp") int lru_8(struct xdp_md *ctx) { return lru_n(8); }

/* The slot is empty: the helper returns the flags' XDP_PASS, as weft's
 * redirect does when no socket is bound (test-run cannot redirect to an
 * AF_XDP socket anyway). */
static __always_inline int redir_n(int n)
{
	__u32 k = 0;
	int i, r = 0;

	for (i = 0; i < n; i++)
		r += bpf_redirect_map(&m_xsk, k + r, XDP_PASS) - XDP_PASS;
	return r ? XDP_ABORTED : XDP_PASS;
}

SEC("xdp") int redir_1(struct xdp_md *ctx) { return redir_n(1); }
SEC("xdp") int redir_8(struct xdp_md *ctx) { return redir_n(8); }

#define CLOCK_N(fn, n)                                                          \
	({                                                                      \
		__u64 t_ = 0;                                                   \
		int i_;                                                         \
		for (i_ = 0; i_ < (n); i_++)                                    \
			t_ += fn();                                             \
		t_ ? XDP_PASS : XDP_ABORTED;                                    \
	})

SEC("xdp") int coarse_1(struct xdp_md *ctx) { return CLOCK_N(bpf_ktime_get_coarse_ns, 1); }
SEC("xdp") int coarse_8(struct xdp_md *ctx) { return CLOCK_N(bpf_ktime_get_coarse_ns, 8); }
SEC("xdp") int ktime_1(struct xdp_md *ctx) { return CLOCK_N(bpf_ktime_get_ns, 1); }
SEC("xdp") int ktime_8(struct xdp_md *ctx) { return CLOCK_N(bpf_ktime_get_ns, 8); }
SEC("xdp") int jiffies_1(struct xdp_md *ctx) { return CLOCK_N(bpf_jiffies64, 1); }
SEC("xdp") int jiffies_8(struct xdp_md *ctx) { return CLOCK_N(bpf_jiffies64, 8); }

/* A bpf-to-bpf call (static, not inlined: the verifier keeps it a call). */
static __noinline int callee(int x)
{
	return x ^ 1;
}

static __always_inline int call_n(struct xdp_md *ctx, int n)
{
	int i, x = ctx->rx_queue_index & 1;

	for (i = 0; i < n; i++)
		x = callee(x);
	return x > 1 ? XDP_ABORTED : XDP_PASS;
}

SEC("xdp") int call_1(struct xdp_md *ctx) { return call_n(ctx, 1); }
SEC("xdp") int call_8(struct xdp_md *ctx) { return call_n(ctx, 8); }

/* An atomic add on an array value (as every ban drop count). */
static __always_inline int atomic_n(int n)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&m_cnt, &k);
	int i;

	if (!v)
		return XDP_ABORTED;
	for (i = 0; i < n; i++)
		__sync_fetch_and_add(v, 1);
	return XDP_PASS;
}

SEC("xdp") int atomic_1(struct xdp_md *ctx) { return atomic_n(1); }
SEC("xdp") int atomic_8(struct xdp_md *ctx) { return atomic_n(8); }

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Straight-line code: n dependent ALU operations (the asm barrier keeps
 * clang from folding them), for ns per BPF instruction on this host. */
static __always_inline int alu_n(struct xdp_md *ctx, int n)
{
	__u64 x = ctx->rx_queue_index;
	int i;

#pragma unroll
	for (i = 0; i < n; i++) {
		x = x * 3 + i;
		asm volatile("" : "+r"(x));
	}
	return x == 1 ? XDP_ABORTED : XDP_PASS;
}

SEC("xdp") int alu_1(struct xdp_md *ctx) { return alu_n(ctx, 8); }
SEC("xdp") int alu_8(struct xdp_md *ctx) { return alu_n(ctx, 64); }
