// SPDX-License-Identifier: GPL-2.0
// tether_decap: the backend's side of tetherd's tunnel forwarding (forwarding = "ipip" or
// "gue"), as an XDP program for kernels without the ipip, sit or fou modules (or where an XDP
// decapsulator is preferred: it runs before the stack allocates anything).
//
// It strips the outer header of
//   IPv4 in IPv4 (RFC 2003, protocol 4), IPv6 in IPv4 (protocol 41, as Katran sends to an
//   IPv4-only backend), IPv6 in IPv6 and IPv4 in IPv6 (next header 41 / 4, RFC 2473), and
//   GUE variant 1 (draft-ietf-intarea-gue: UDP to the configured port whose payload is the
//   inner IPv4 or IPv6 packet itself, the first two bits 01) over IPv4 or IPv6,
// and hands the inner packet to the stack as if it had arrived so (XDP_PASS after moving the
// Ethernet header forward): the backend holds the VIP on lo and answers the client directly.
//
// Every byte is hostile: an encapsulation whose lengths disagree (outer total length past the
// frame, inner length not filling the outer payload exactly, truncated headers, an outer
// fragment, a GUE variant 0 header, an inner version that is not 4 or 6) is dropped and
// counted, never passed up as an inner packet. Anything not tunnelled (another protocol, UDP
// to another port, ARP...) goes on untouched, counted as not_tunnelled.
//
// Maps (read and set with bpftool; backend/tether-decap does both; names within the 15
// characters the kernel keeps):
//   decap_counters  per-CPU array, indexes as enum counter below
//   decap_config    array of one struct decap_config: gue_port (host order, 0: the
//                  default TETHER_GUE_PORT)
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef TETHER_GUE_PORT
#define TETHER_GUE_PORT 6080  // the default of tetherd's gue port (Katran's too)
#endif

enum counter {
  DECAPSULATED_IPIP = 0,  // IPv4/IPv6 in IPv4/IPv6 stripped and passed up
  DECAPSULATED_GUE = 1,   // GUE variant 1 stripped and passed up
  NOT_TUNNELLED = 2,      // not an encapsulation: passed up untouched
  MALFORMED = 3,          // an encapsulation that does not hold together: dropped
  COUNTER_COUNT
};

struct decap_config {
  __u16 gue_port;  // host order; 0: TETHER_GUE_PORT
  __u16 unused;
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, COUNTER_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} decap_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct decap_config);
} decap_config SEC(".maps");

static __always_inline int count(enum counter which, int verdict) {
  __u32 key = which;
  __u64 *value = bpf_map_lookup_elem(&decap_counters, &key);
  if (value) *value += 1;  // per-CPU: no atomics needed
  return verdict;
}

static __always_inline __u16 gue_port(void) {
  __u32 key = 0;
  struct decap_config *config = bpf_map_lookup_elem(&decap_config, &key);
  return config && config->gue_port ? config->gue_port : TETHER_GUE_PORT;
}

// The inner packet at `inner` must be a whole IPv4 or IPv6 packet of exactly `length` bytes
// (`length` is what the outer header says its payload is); returns its ethertype (network
// order), or 0 if it is not one.
static __always_inline __be16 inner_packet(void *inner, void *data_end, __u32 length) {
  __u8 *first = inner;
  if ((void *)(first + 1) > data_end) return 0;
  if ((*first >> 4) == 4) {
    struct iphdr *ip = inner;
    if ((void *)(ip + 1) > data_end) return 0;
    __u32 header = ip->ihl * 4;
    if (header < sizeof(*ip) || bpf_ntohs(ip->tot_len) != length || length < header) return 0;
    return bpf_htons(ETH_P_IP);
  }
  if ((*first >> 4) == 6) {
    struct ipv6hdr *ip6 = inner;
    if ((void *)(ip6 + 1) > data_end) return 0;
    if (sizeof(*ip6) + bpf_ntohs(ip6->payload_len) != length) return 0;
    return bpf_htons(ETH_P_IPV6);
  }
  return 0;
}

// Moves the Ethernet header forward over the `strip` bytes of outer headers, with the inner
// packet's ethertype, and passes the frame up.
static __always_inline int decapsulate(struct xdp_md *ctx, __u32 strip, __be16 inner_type,
                                       enum counter which) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr saved;
  if (data + sizeof(saved) > data_end) return count(MALFORMED, XDP_DROP);
  __builtin_memcpy(&saved, data, sizeof(saved));
  saved.h_proto = inner_type;
  if (bpf_xdp_adjust_head(ctx, (int)strip)) return count(MALFORMED, XDP_DROP);
  data = (void *)(long)ctx->data;
  data_end = (void *)(long)ctx->data_end;
  if (data + sizeof(saved) > data_end) return count(MALFORMED, XDP_DROP);
  __builtin_memcpy(data, &saved, sizeof(saved));
  return count(which, XDP_PASS);
}

// GUE variant 1 after an outer header: `udp` within the frame, `udp_length` bytes of outer
// payload from it on.
static __always_inline int gue(struct xdp_md *ctx, struct udphdr *udp, void *data_end,
                               __u32 outer_header, __u32 udp_length) {
  if ((void *)(udp + 1) > data_end) return count(MALFORMED, XDP_DROP);  // again, for the verifier
  if (bpf_ntohs(udp->len) != udp_length || udp_length < sizeof(*udp)) return count(MALFORMED, XDP_DROP);
  __u8 *payload = (__u8 *)(udp + 1);
  if ((void *)(payload + 1) > data_end) return count(MALFORMED, XDP_DROP);
  if ((*payload >> 6) != 1) return count(MALFORMED, XDP_DROP);  // variant 0 (a GUE header) or unknown
  __be16 inner = inner_packet(payload, data_end, udp_length - sizeof(*udp));
  if (!inner) return count(MALFORMED, XDP_DROP);
  return decapsulate(ctx, outer_header + sizeof(*udp), inner, DECAPSULATED_GUE);
}

static __always_inline int outer_ipv4(struct xdp_md *ctx, struct iphdr *ip, void *data_end,
                                      __u32 frame_left) {
  if (ip->protocol != IPPROTO_IPIP && ip->protocol != IPPROTO_IPV6 && ip->protocol != IPPROTO_UDP)
    return count(NOT_TUNNELLED, XDP_PASS);
  __u32 header = ip->ihl * 4;
  if (ip->protocol == IPPROTO_UDP) {  // only UDP to the GUE port is ours to judge
    struct udphdr *udp = (void *)ip + header;
    if (header < sizeof(*ip) || (void *)(udp + 1) > data_end || udp->dest != bpf_htons(gue_port()))
      return count(NOT_TUNNELLED, XDP_PASS);
  }
  __u32 total = bpf_ntohs(ip->tot_len);
  if (ip->version != 4 || header < sizeof(*ip) || total < header || total > frame_left)
    return count(MALFORMED, XDP_DROP);
  if (ip->frag_off & bpf_htons(0x3fff)) return count(MALFORMED, XDP_DROP);  // tetherd never fragments
  void *payload = (void *)ip + header;
  if (ip->protocol == IPPROTO_UDP) return gue(ctx, payload, data_end, header, total - header);
  __be16 inner = inner_packet(payload, data_end, total - header);
  if (!inner || (inner == bpf_htons(ETH_P_IP)) != (ip->protocol == IPPROTO_IPIP))
    return count(MALFORMED, XDP_DROP);
  return decapsulate(ctx, header, inner, DECAPSULATED_IPIP);
}

static __always_inline int outer_ipv6(struct xdp_md *ctx, struct ipv6hdr *ip6, void *data_end,
                                      __u32 frame_left) {
  __u8 next = ip6->nexthdr;
  if (next != IPPROTO_IPIP && next != IPPROTO_IPV6 && next != IPPROTO_UDP)
    return count(NOT_TUNNELLED, XDP_PASS);  // extension headers included: tetherd sends none
  void *payload = ip6 + 1;
  struct udphdr *udp = payload;
  if (next == IPPROTO_UDP && ((void *)(udp + 1) > data_end || udp->dest != bpf_htons(gue_port())))
    return count(NOT_TUNNELLED, XDP_PASS);  // only UDP to the GUE port is ours to judge
  __u32 payload_length = bpf_ntohs(ip6->payload_len);
  if (ip6->version != 6 || sizeof(*ip6) + payload_length > frame_left) return count(MALFORMED, XDP_DROP);
  if (next == IPPROTO_UDP) return gue(ctx, udp, data_end, sizeof(*ip6), payload_length);
  __be16 inner = inner_packet(payload, data_end, payload_length);
  if (!inner || (inner == bpf_htons(ETH_P_IP)) != (next == IPPROTO_IPIP)) return count(MALFORMED, XDP_DROP);
  return decapsulate(ctx, sizeof(*ip6), inner, DECAPSULATED_IPIP);
}

SEC("xdp")
int tether_decap(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return count(NOT_TUNNELLED, XDP_PASS);
  __u32 frame_left = (__u32)(data_end - (void *)(eth + 1));
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end) return count(NOT_TUNNELLED, XDP_PASS);
    return outer_ipv4(ctx, ip, data_end, frame_left);
  }
  if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > data_end) return count(NOT_TUNNELLED, XDP_PASS);
    return outer_ipv6(ctx, ip6, data_end, frame_left);
  }
  return count(NOT_TUNNELLED, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
