#!/usr/bin/env bash
# Boot a real Xen 4.17 hypervisor with a Debian Linux dom0 inside qemu-system-x86_64 (pure
# emulation, no KVM), run vdist's Xen checks there, and exit with their result. Recipe and
# pitfalls: ../shared/research/xen-qemu.md. Debian's Xen hypervisor, Xen tools and Linux kernel
# are downloaded with `apt-get download` and unpacked into the scratch directory, never
# installed into the host's boot. Registered in CTest as `xen_qemu` (label xen).
#
#   run-xen-qemu.sh <bin dir> <scratch dir>
#
# <bin dir> holds xen_ring_channel_test, xen_ring_check and libxenvchan_peer. What runs is in
# dom0-init.sh (dom0 <-> dom0, and dom0's side of dom0 <-> domU) and domu-init.sh (the PV
# domU's side). Exit status: 0 when every check passed, 1 otherwise, 77 (CTest: skipped) when
# QEMU cannot run here. Artifacts in the scratch directory: serial-dom0.log (Xen's, dom0's and
# the domU's consoles) and results.txt (one line per check).
#
# Environment: VDIST_XEN_SUITE_ARGS  extra arguments for xen_ring_channel_test (e.g. a
#                                    --gtest_filter); QEMU_TIMEOUT  hard limit in seconds per boot (300;
#                                    a boot in which a dom0 program crashed is retried, see boot);
#                                    QEMU_CPU  the -cpu model (qemu64, see boot).
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
bin=$(readlink -f "$1")
W=$(readlink -m "$2")
mkdir -p "$W" && cd "$W"

if ! command -v qemu-system-x86_64 >/dev/null; then
    echo "SKIP: qemu-system-x86_64 is not installed (scripts/setup.sh installs qemu-system-x86)"
    exit 77
fi
# A paused machine that stays up until `timeout` stops it proves QEMU can run here.
probe_rc=0
timeout 3 qemu-system-x86_64 -machine q35 -cpu "${QEMU_CPU:-qemu64}" -m 64 -display none -nodefaults \
    -monitor none -serial none -S >/dev/null 2>qemu-probe.err || probe_rc=$?
if [ $probe_rc -ne 124 ]; then
    echo "SKIP: qemu-system-x86_64 cannot start a machine here: $(head -1 qemu-probe.err)"
    exit 77
fi

# --- Debian's Xen and kernel, unpacked (cached across runs) ------------------------------------
kernel_package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
kernel_version=${kernel_package#linux-image-}
if [ ! -e "x/boot/vmlinuz-$kernel_version" ] || [ ! -e x/boot/xen-4.17-amd64.gz ]; then
    echo "downloading Debian's Xen 4.17 and $kernel_package"
    rm -rf debs x && mkdir -p debs x
    (cd debs && apt-get download -q xen-hypervisor-4.17-amd64 xen-utils-4.17 libxenmisc4.17 \
        libxenstore4 libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxentoollog1 \
        libxendevicemodel1 libxentoolcore1 libxenhypfs1 libyajl2 "$kernel_package" >/dev/null)
    for deb in debs/*.deb; do dpkg-deb -x "$deb" x; done
    rm -rf debs
fi
zcat x/boot/xen-4.17-amd64.gz > xen.elf  # QEMU's multiboot loader takes the ELF32 image
cp "x/boot/vmlinuz-$kernel_version" vmlinuz

# --- initramfs images ----------------------------------------------------------------------------
export LD_LIBRARY_PATH=$W/x/usr/lib/x86_64-linux-gnu  # the unpacked libxen for ldd
copy_binary() {  # copy_binary ROOT SOURCE DESTINATION: a binary and its shared-library closure
    local root=$1 source=$2 destination=$3 library
    mkdir -p "$root$(dirname "$destination")" "$root/lib64" "$root/usr/lib/x86_64-linux-gnu"
    cp -L "$source" "$root$destination"
    ldd "$source" | awk '/=>/{print $3} /ld-linux/{print $1}' | while read -r library; do
        [ -e "$library" ] || continue
        case $library in
            */ld-linux*) cp -L "$library" "$root/lib64/" ;;
            *) cp -L "$library" "$root/usr/lib/x86_64-linux-gnu/" ;;
        esac
    done
}
copy_module() {  # copy_module ROOT NAME
    local file
    file=$(find "x/lib/modules/$kernel_version/kernel/drivers/xen" -name "$2.ko*" | head -1)
    mkdir -p "$1/lib/modules"
    case $file in
        *.xz) xz -dc "$file" > "$1/lib/modules/$2.ko" ;;
        *.zst) zstd -qdc "$file" > "$1/lib/modules/$2.ko" ;;
        *) cp "$file" "$1/lib/modules/$2.ko" ;;
    esac
}
make_initramfs() {  # make_initramfs ROOT OUTPUT
    (cd "$1" && find . | cpio -H newc -o --quiet | gzip -1) > "$2"
}

# The domU: busybox, the vdist end and Debian's libxenvchan end.
domu=$W/domu-root
rm -rf "$domu" && mkdir -p "$domu"/{bin,proc,sys,dev,tmp}
cp /bin/busybox "$domu/bin/"
copy_binary "$domu" "$bin/xen_ring_check" /bin/xen_ring_check
copy_binary "$domu" "$bin/libxenvchan_peer" /bin/libxenvchan_peer
for module in xen-evtchn xen-gntdev xen-gntalloc; do copy_module "$domu" $module; done
cp "$here/domu-init.sh" "$domu/init"

# dom0: busybox, the Xen device modules, the minimal toolstack, the checks, the domU's images.
root=$W/rootfs
rm -rf "$root" && mkdir -p "$root"/{bin,sbin,etc/xen,proc,sys,dev,run,tmp,root,var/lib,var/log}
ln -s ../run "$root/var/run"
cp /bin/busybox "$root/bin/"
for check in xen_ring_channel_test xen_ring_check libxenvchan_peer; do
    copy_binary "$root" "$bin/$check" "/bin/$check"
done
tools=x/usr/lib/xen-4.17/bin
for tool in xenstored xen-init-dom0 xl xenconsoled; do
    copy_binary "$root" "$tools/$tool" "/sbin/$tool"
done
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$root/usr/lib/x86_64-linux-gnu/"  # xl needs it (pthread_cancel)
: > "$root/etc/xen/xl.conf"
for module in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do copy_module "$root" $module; done
echo "${VDIST_XEN_SUITE_ARGS:-}" > "$root/etc/vdist-suite-args"
cp "$here/dom0-init.sh" "$root/init"
make_initramfs "$domu" "$root/root/domu-initrd.gz"
cp vmlinuz "$root/root/vmlinuz"
make_initramfs "$root" dom0-initrd.gz

# --- boot --------------------------------------------------------------------------------------
# The CPU model is qemu64, the one Xen's own CI boots under TCG (SSE2, no AVX, no XSAVE
# extensions). With `-cpu max,-smap` dom0's programs died now and then once the domU had run
# (5 of 9 boots): Debian's xl (in libc), busybox applets (reading TLS at address 0), the dynamic
# loader (ld.so's assertion "Inconsistency detected by ld.so: dl-hwcaps.c"), xen_ring_check
# aborting (rc=134) — consistent with extended register state not surviving Xen's vCPU switches
# under emulation. With qemu64, 4 of 4 boots in a row had no crash (2026-11-27). Should a
# program of dom0 still crash so, the boot is not a verdict on vdist: it is booted again (at
# most three boots in all), and the log says why; when every boot crashed so, the test reports
# itself skipped (77), not passed. A boot in which no program of dom0 crashed is never retried,
# so a real failure or hang of vdist still fails.
boot() {
    rm -f serial-dom0.log results.txt
    start=$(date +%s%N)
    timeout "${QEMU_TIMEOUT:-300}" qemu-system-x86_64 -machine q35 -cpu "${QEMU_CPU:-qemu64}" -smp 1 -m 1536 \
        -nographic -no-reboot -monitor none -display none \
        -kernel xen.elf \
        -append "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=768M,max:768M dom0_max_vcpus=1 bootscrub=false" \
        -initrd "vmlinuz console=hvc0 earlyprintk=xen rdinit=/init,dom0-initrd.gz" \
        -serial file:serial-dom0.log > qemu.out 2>&1 || true
    end=$(date +%s%N)
}
# A boot to try again: not every check passed (or dom0 did not finish) and a program crashed.
machine_fault() {
    local passed
    passed=$(tr -d '\r' < serial-dom0.log | grep -c "^XEN_RESULT .* rc=0 " || true)
    if grep -q DOM0_DONE serial-dom0.log && [ "$passed" -ge 17 ]; then
        return 1
    fi
    tr -d '\r' < serial-dom0.log | grep -E "\]: segfault at|Inconsistency detected by ld.so"
}
for attempt in 1 2 3; do
    boot
    if [ $attempt -eq 3 ] || ! machine_fault; then
        break
    fi
    echo "RETRY: boot $attempt: a program of dom0 crashed under emulation (above); booting again"
    cp serial-dom0.log "serial-dom0-boot$attempt.log"
done

# --- verdict -----------------------------------------------------------------------------------
tr -d '\r' < serial-dom0.log | grep -E "^(DOM0_INIT|XENSTORE_UP|DOMU_UP|DOM0_DONE)|XEN_RING_|XEN_PEER_GONE|XEN_RESULT|DOMU_STEP|^\[ *(PASSED|FAILED|SKIPPED)" || true
tr -d '\r' < serial-dom0.log | sed -n 's/^XEN_RESULT //p' > results.txt
echo "QEMU ran $(((end - start) / 1000000)) ms; serial log: $W/serial-dom0.log"
expected=(suite
    vv1024-vdist-server-vdist-client vl1024-vdist-server-libxenvchan-client
    lv1024-libxenvchan-server-vdist-client vv65536-vdist-server-vdist-client
    vl65536-vdist-server-libxenvchan-client lv65536-libxenvchan-server-vdist-client
    client-killed server-killed xl-create
    du1024-vdist-server-domU-vdist-client du65536-vdist-server-domU-vdist-client
    dl1024-vdist-server-domU-libxenvchan-client dl65536-vdist-server-domU-libxenvchan-client
    ld1024-domU-libxenvchan-server-vdist-client ld65536-domU-libxenvchan-server-vdist-client
    domU-destroyed)
failures=0
for check in "${expected[@]}"; do
    line=$(grep -m1 "^$check " results.txt || true)
    case $line in
        *" rc=0 "*) echo "PASS $line" ;;
        "") echo "FAIL $check: did not run (dom0 stopped or timed out first)"; failures=$((failures + 1)) ;;
        *) echo "FAIL $line"; failures=$((failures + 1)) ;;
    esac
done
if ! grep -q DOM0_DONE serial-dom0.log; then
    echo "FAIL: dom0 did not finish (QEMU_TIMEOUT ${QEMU_TIMEOUT:-300} s)"
    failures=$((failures + 1))
fi
if [ $failures -ne 0 ] && machine_fault > /dev/null; then
    # Every boot had a program of dom0 crash under emulation: no verdict on vdist either way.
    # Reported as skipped (CTest's 77, as when QEMU cannot start), never as passed.
    echo "SKIP: in each of $attempt boots a program of dom0 crashed under emulation (see RETRY"
    echo "      lines and serial-dom0*.log); $failures of ${#expected[@]} Xen checks not passed"
    exit 77
fi
if [ $failures -ne 0 ]; then
    echo "FAIL: $failures of ${#expected[@]} Xen checks"
    exit 1
fi
echo "PASS: all ${#expected[@]} Xen checks"
