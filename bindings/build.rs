//! With feature `dpdk`: finds the system DPDK with pkg-config, generates bindings with bindgen
//! over `src/wrapper.h` (allowlisted to what the data plane uses, to keep builds short) and
//! compiles the C shim `src/shim.c`. Both get the full `pkg-config --cflags libdpdk`, which
//! force-includes `rte_config.h` and sets `-march=corei7`: without them the headers do not
//! compile or produce a different layout. Without the feature this does nothing, so the
//! workspace builds on machines without DPDK.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "dpdk")]
    dpdk::build();
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::env;
    use std::path::PathBuf;
    use std::process::Command;

    /// Functions bindgen exposes (the types they use come along).
    const FUNCTIONS: &[&str] = &[
        "rte_eal_init",
        "rte_eal_cleanup",
        "rte_strerror",
        "rte_version",
        "rte_socket_id",
        "rte_vdev_init",
        "rte_vdev_uninit",
        "rte_eth_dev_count_avail",
        "rte_eth_dev_get_port_by_name",
        "rte_eth_dev_get_name_by_port",
        "rte_eth_dev_is_valid_port",
        "rte_eth_dev_socket_id",
        "rte_eth_dev_info_get",
        "rte_eth_dev_configure",
        "rte_eth_dev_adjust_nb_rx_tx_desc",
        "rte_eth_rx_queue_setup",
        "rte_eth_tx_queue_setup",
        "rte_eth_dev_start",
        "rte_eth_dev_stop",
        "rte_eth_dev_close",
        "rte_eth_promiscuous_enable",
        "rte_eth_macaddr_get",
        "rte_eth_link_get_nowait",
        "rte_eth_stats_get",
        "rte_eth_stats_reset",
        "rte_eth_xstats_get_names",
        "rte_eth_xstats_get",
        "rte_pktmbuf_pool_create",
        "rte_pktmbuf_free_bulk",
        "rte_mempool_free",
        "rte_mempool_avail_count",
        "rte_mempool_in_use_count",
        // Workers that are not EAL-launched register as non-EAL lcores (mempool caches).
        "rte_thread_register",
        "rte_thread_unregister",
        // Back-to-back ethdev pairs over two rte_rings (tests, in-process links).
        "rte_ring_create",
        "rte_ring_free",
        "rte_eth_from_rings",
        "nmadp_.*",
    ];

    /// Types needed by name beyond those reached from the functions.
    const TYPES: &[&str] = &["rte_eth_rx_mq_mode", "rte_eth_tx_mq_mode"];

    /// Macros (simple integer constants) needed by name.
    const VARS: &[&str] = &[
        "RTE_ETH_NAME_MAX_LEN",
        "RTE_ETH_XSTATS_NAME_SIZE",
        "RTE_MEMPOOL_NAMESIZE",
        "RTE_MAX_ETHPORTS",
        "RTE_ETH_LINK_UP",
        "RTE_VER_.*",
        "RING_F_SP_ENQ",
        "RING_F_SC_DEQ",
    ];

    fn cflags() -> Vec<String> {
        let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
        let out = Command::new(&pkg_config)
            .args(["--cflags", "libdpdk"])
            .output()
            .unwrap_or_else(|e| panic!("running {pkg_config}: {e}"));
        assert!(
            out.status.success(),
            "pkg-config --cflags libdpdk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    pub fn build() {
        println!("cargo:rerun-if-changed=src/wrapper.h");
        println!("cargo:rerun-if-changed=src/shim.h");
        println!("cargo:rerun-if-changed=src/shim.c");
        println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

        // Emits the link flags (shared libraries). PMDs are not named: the shared EAL loads
        // every driver from its plugin directory at rte_eal_init.
        let lib = pkg_config::Config::new()
            .atleast_version("22.11")
            .probe("libdpdk")
            .unwrap_or_else(|e| panic!("DPDK >= 22.11 not found by pkg-config: {e}"));
        // rte_vdev_init lives in the vdev bus driver, which libdpdk.pc does not list.
        println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");
        // rte_eth_from_rings lives in the net_ring PMD (loaded again, the same object, by the
        // EAL's plugin loader).
        println!("cargo:rustc-link-lib=dylib=rte_net_ring");
        println!("cargo:version={}", lib.version);

        let cflags = cflags();

        let mut cc = cc::Build::new();
        cc.file("src/shim.c").include("src").opt_level(3);
        for f in &cflags {
            cc.flag(f);
        }
        // DPDK headers trip -Wextra (unused parameters in inline functions).
        cc.warnings(false).compile("nmadp_dpdk_shim");

        let mut b = bindgen::Builder::default()
            .header("src/wrapper.h")
            .clang_arg("-Isrc")
            .clang_args(&cflags)
            .use_core()
            .ctypes_prefix("core::ffi")
            .derive_default(true)
            .derive_debug(false)
            .prepend_enum_name(false)
            // The mbuf layout is bound for real: the fast-path accessors (`mbuf_*` in lib.rs)
            // read buf_addr/data_off/data_len/pkt_len/nb_segs/buf_len directly instead of
            // calling the shim (two non-inlined FFI calls per `data()`). bindgen's layout tests
            // (size, alignment, field offsets as seen by clang with the DPDK cflags) and
            // `tests::mbuf_accessors_match_the_shim` check it. The mempool stays opaque.
            .allowlist_type("rte_mbuf")
            .opaque_type("rte_mempool")
            .generate_comments(false)
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
        for f in FUNCTIONS {
            b = b.allowlist_function(f);
        }
        for t in TYPES {
            b = b.allowlist_type(t);
        }
        for v in VARS {
            b = b.allowlist_var(v);
        }
        let bindings = b.generate().expect("bindgen over wrapper.h");
        let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("bindings.rs");
        bindings.write_to_file(&out).expect("writing bindings.rs");
    }
}
