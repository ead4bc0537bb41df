#!/bin/sh
# Prepares 2 MiB hugepages for DPDK and prints the EAL memory flags to use:
#   --in-memory --huge-dir DIR   when hugepages are available and mounted,
#   --no-huge -m 512             otherwise (always works, roughly 1.5-2x slower).
# Idempotent and harmless when already set up; never fails (it falls back instead).
# Flags go to stdout, notes to stderr, so that:  NMADP_EAL_MEM="$(deploy/dpdk-env.sh)"
#
# Environment: NMADP_HUGE_DIR (mount point, default /run/nmadp/hugepages),
#              NMADP_HUGEPAGES (2 MiB pages wanted, default 512 = 1 GiB).
# Undo: umount "$NMADP_HUGE_DIR"; echo 0 > /proc/sys/vm/nr_hugepages

DIR="${NMADP_HUGE_DIR:-/run/nmadp/hugepages}"
WANT="${NMADP_HUGEPAGES:-512}"
FALLBACK="--no-huge -m 512"

note() { echo "dpdk-env: $*" >&2; }
fallback() {
    note "$1; falling back to: $FALLBACK"
    echo "$FALLBACK"
    exit 0
}

meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo 2>/dev/null; }

[ -r /proc/meminfo ] || fallback "no /proc/meminfo"
[ -n "$(meminfo HugePages_Total)" ] || fallback "kernel without hugepage support"

# Only the 2 MiB size is handled (the default on x86_64).
size_kb="$(meminfo Hugepagesize)"
[ "$size_kb" = 2048 ] || fallback "default hugepage size is ${size_kb:-unknown} kB, not 2048"

total="$(meminfo HugePages_Total)"
if [ "${total:-0}" -lt "$WANT" ]; then
    if [ -w /proc/sys/vm/nr_hugepages ]; then
        echo "$WANT" >/proc/sys/vm/nr_hugepages 2>/dev/null || note "cannot raise nr_hugepages"
    else
        note "/proc/sys/vm/nr_hugepages not writable (not root, or a container)"
    fi
    total="$(meminfo HugePages_Total)"
fi
free="$(meminfo HugePages_Free)"
# Fragmented memory can yield fewer pages than asked: 128 (256 MiB) is enough to run.
[ "${free:-0}" -ge 128 ] || fallback "only ${free:-0} free hugepages (of ${total:-0})"

if ! grep -qs " $DIR hugetlbfs " /proc/mounts; then
    mkdir -p "$DIR" 2>/dev/null || fallback "cannot create $DIR"
    mount -t hugetlbfs -o pagesize=2M nodev "$DIR" 2>/dev/null ||
        fallback "cannot mount hugetlbfs at $DIR"
fi

# Left-over map files of earlier runs without --in-memory hold pages: report them.
if [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
    note "files left in $DIR (earlier DPDK runs without --in-memory?): $(ls "$DIR" | head -5 | tr '\n' ' ')"
fi

note "hugepages: $free free of $total (2 MiB) at $DIR"
echo "--in-memory --huge-dir $DIR"
