/* Non-inline wrappers for DPDK's static-inline fast-path calls and for macros bindgen cannot
 * evaluate. Every function is a one-line forward; see shim.c. */
#ifndef NMADP_DPDK_SHIM_H
#define NMADP_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

uint16_t nmadp_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
			    uint16_t nb_pkts);
uint16_t nmadp_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
			    uint16_t nb_pkts);

struct rte_mbuf *nmadp_pktmbuf_alloc(struct rte_mempool *mp);
int nmadp_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
void nmadp_pktmbuf_free(struct rte_mbuf *m);
void nmadp_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);

char *nmadp_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *nmadp_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *nmadp_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int nmadp_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
/* rte_pktmbuf_chain: 0, or -EOVERFLOW (nothing changed) when the chain would be too long. */
int nmadp_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);

/* rte_pktmbuf_mtod(m, void *): start of the data in the first segment. */
void *nmadp_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t nmadp_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t nmadp_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t nmadp_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t nmadp_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t nmadp_pktmbuf_tailroom(const struct rte_mbuf *m);
/* Owning pool of an mbuf (m->pool). */
struct rte_mempool *nmadp_pktmbuf_pool(const struct rte_mbuf *m);
uint16_t nmadp_pktmbuf_data_room_size(struct rte_mempool *mp);

/* rte_errno (a per-thread variable). */
int nmadp_errno(void);
unsigned int nmadp_lcore_id(void);

/* Macros bindgen cannot evaluate (they expand to RTE_BIT64 and casts). */
uint32_t nmadp_lcore_id_any(void);
uint64_t nmadp_rss_hf_ip_tcp_udp(void);
uint16_t nmadp_pktmbuf_headroom_default(void);
uint16_t nmadp_mbuf_default_buf_size(void);
int nmadp_socket_id_any(void);

/* Registers (or finds) the mbuf dynamic field that holds a packet's receive time (8 bytes):
 * its offset in the mbuf, or -1 with rte_errno set. */
int nmadp_rx_stamp_register(void);

#endif
