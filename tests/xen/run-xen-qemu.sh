#!/usr/bin/env bash
# Boot a real Xen 4.17 hypervisor with a Debian Linux dom0 inside qemu-system-x86_64 (pure
# emulation, no KVM) and run vdist's Xen-backend checks in dom0 (dom0 <-> dom0). Recipe and
# pitfalls: ../shared/research/xen-qemu.md. Debian packages are downloaded and unpacked into the
# scratch directory, never installed into the host's boot.
#
#   run-xen-qemu.sh <xen_ring_check> <libxenvchan_peer> <scratch dir>
#
# For in-page rings (1 KiB / 2 KiB) and paged rings (64 KiB), in dom0: vdist server + vdist
# client, vdist server + libxenvchan client, libxenvchan server + vdist client; then a vdist
# server in dom0 with a vdist client in a PV domU started by `xl create`. Each pair does 1000
# one-byte round trips and a 1 MiB echo verified byte for byte.
# Exit status: 0 when every pair passed, 1 otherwise, 77 when QEMU cannot run here. The serial
# log (Xen and dom0 consoles) is kept as <scratch>/serial-dom0.log.
set -euo pipefail
VDIST_CHECK=$(readlink -f "$1")
LIBXENVCHAN_PEER=$(readlink -f "$2")
W=$(readlink -m "$3")
mkdir -p "$W" && cd "$W"
export DEBIAN_FRONTEND=noninteractive

host_packages=(qemu-system-x86 busybox-static cpio)
if ! dpkg -s "${host_packages[@]}" >/dev/null 2>&1; then
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${host_packages[@]}" >/dev/null
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
    echo "SKIP: qemu-system-x86_64 is not available"
    exit 77
fi

kernel_package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
kernel_version=${kernel_package#linux-image-}
if [ ! -e "x/boot/vmlinuz-$kernel_version" ] || [ ! -e x/boot/xen-4.17-amd64.gz ]; then
    rm -rf debs x && mkdir -p debs x
    (cd debs && apt-get download -q xen-hypervisor-4.17-amd64 xen-utils-4.17 libxenmisc4.17 \
        libxenstore4 libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxentoollog1 \
        libxendevicemodel1 libxentoolcore1 libxenhypfs1 libyajl2 "$kernel_package" >/dev/null 2>&1)
    for deb in debs/*.deb; do dpkg-deb -x "$deb" x; done
fi
zcat x/boot/xen-4.17-amd64.gz > xen.elf  # QEMU's multiboot loader takes the ELF32 image
cp "x/boot/vmlinuz-$kernel_version" vmlinuz

# The dom0 initramfs: busybox, the Xen device modules, xenstored, xen-init-dom0, the check.
root=$W/rootfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,etc/xen,proc,sys,dev,run,tmp,root,lib/modules,var/lib,var/log}
ln -s ../run "$root/var/run"
cp /bin/busybox "$root/bin/"
export LD_LIBRARY_PATH=$W/x/usr/lib/x86_64-linux-gnu
copy_binary() {  # copy_binary SOURCE DESTINATION: a binary and its shared-library closure
    local source=$1 destination=$2 library
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
tools=x/usr/lib/xen-4.17/bin
copy_binary "$VDIST_CHECK" /bin/xen_ring_check
copy_binary "$LIBXENVCHAN_PEER" /bin/libxenvchan_peer
copy_binary "$tools/xenstored" /sbin/xenstored
copy_binary "$tools/xen-init-dom0" /sbin/xen-init-dom0
copy_binary "$tools/xl" /sbin/xl
copy_binary "$tools/xenconsoled" /sbin/xenconsoled
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$root/usr/lib/x86_64-linux-gnu/"  # xl needs it (pthread_cancel)
: > "$root/etc/xen/xl.conf"
modules=x/lib/modules/$kernel_version/kernel/drivers/xen
for module in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do
    file=$(find "$modules" -name "$module.ko*" | head -1)
    case $file in
        *.xz) xz -dc "$file" > "$root/lib/modules/$module.ko" ;;
        *.zst) zstd -qdc "$file" > "$root/lib/modules/$module.ko" ;;
        *) cp "$file" "$root/lib/modules/$module.ko" ;;
    esac
done
# The domU: the same kernel with a busybox initramfs holding the vdist client. Its /init runs the
# clients against dom0's servers, then powers the domain off.
domu=$W/domu-root
rm -rf "$domu"
mkdir -p "$domu"/{bin,proc,sys,dev,tmp,lib/modules}
cp /bin/busybox "$domu/bin/"
saved_root=$root
root=$domu
copy_binary "$VDIST_CHECK" /bin/xen_ring_check
root=$saved_root
for module in xen-evtchn xen-gntdev xen-gntalloc; do
    cp "$root/lib/modules/$module.ko" "$domu/lib/modules/"
done
cat > "$domu/init" <<'EOI'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in xen-evtchn xen-gntdev xen-gntalloc; do insmod /lib/modules/$m.ko; done
echo "DOMU_UP uptime=$(cut -d' ' -f1 /proc/uptime)"
for port in du1024 du65536; do
    timeout 60 xen_ring_check client 0 $port 1048576
    echo "DOMU_CLIENT port=$port rc=$?"
done
poweroff -f
EOI
chmod +x "$domu/init"
(cd "$domu" && find . | cpio -H newc -o --quiet | gzip -1) > "$root/root/domu-initrd.gz"
cp vmlinuz "$root/root/vmlinuz"

cat > "$root/init" <<'EOI'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
up() { cut -d' ' -f1 /proc/uptime; }
echo "DOM0_INIT uptime=$(up)"
for m in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do insmod /lib/modules/$m.ko || echo "insmod $m failed"; done
mkdir -p /proc/xen /run/xenstored /run/xen /var/lib/xenstored /var/lib/xen /var/log/xen
mount -t xenfs xenfs /proc/xen
xenstored --pid-file /run/xenstored.pid || echo "xenstored failed"
xen-init-dom0 || echo "xen-init-dom0 failed"
echo "XENSTORE_UP uptime=$(up)"
# pair SERVER CLIENT SIZES PORT: run one exchange in dom0 (domid 0 talks to itself). Ports stay
# short: libxenvchan formats "<path>/event-channel" into a 64-byte buffer and cuts longer paths.
pair() {
    port=$4
    path=/local/domain/0/data/vchan/0/$port
    started=$(up)
    if [ "$1" = vdist ]; then timeout 120 xen_ring_check server 0 "$port" 1048576 $3 &
    else timeout 120 libxenvchan_peer server 0 "$path" 1048576 $3 & fi
    server=$!
    if [ "$2" = vdist ]; then timeout 120 xen_ring_check client 0 "$port" 1048576
    else timeout 120 libxenvchan_peer client 0 "$path" 1048576; fi
    client_rc=$?
    wait $server
    echo "XEN_CHECK server=$1 client=$2 sizes=${3% *}/${3#* } client_rc=$client_rc server_rc=$? seconds=$started-$(up)"
}
for sizes in "1024 2048" "65536 65536"; do
    pair vdist vdist "$sizes" "vv${sizes% *}"
    pair vdist libxenvchan "$sizes" "vl${sizes% *}"
    pair libxenvchan vdist "$sizes" "lv${sizes% *}"
done
# dom0 <-> domU: the servers for peer domid 1 are created only once the domain exists (C
# xenstored ignores a permission entry naming a domain created after the node).
mkdir -p /dev/pts /var/log/xen/console; mount -t devpts devpts /dev/pts
xenconsoled --log=guest --log-dir=/var/log/xen/console &
cat > /root/domu.cfg <<EOC
name="vdist-domu"
memory=256
vcpus=1
kernel="/root/vmlinuz"
ramdisk="/root/domu-initrd.gz"
extra="console=hvc0 quiet"
on_poweroff="destroy"
EOC
if xl create /root/domu.cfg; then
    echo "XL_CREATE_OK uptime=$(up)"
    for sizes in "1024 2048" "65536 65536"; do
        started=$(up)
        timeout 120 xen_ring_check server 1 "du${sizes% *}" 1048576 $sizes
        echo "XEN_DOMU_CHECK server=vdist-dom0 client=vdist-domU sizes=${sizes% *}/${sizes#* } server_rc=$? seconds=$started-$(up)"
    done
    sleep 1
    echo "--- domU console:"; cat /var/log/xen/console/guest-vdist-domu.log
else
    echo "XL_CREATE_FAILED"
fi
echo "DOM0_DONE uptime=$(up)"
reboot -f
EOI
chmod +x "$root/init"
(cd "$root" && find . | cpio -H newc -o --quiet | gzip -1) > dom0-initrd.gz

start=$(date +%s%N)
timeout "${QEMU_TIMEOUT:-300}" qemu-system-x86_64 -machine q35 -cpu max,-smap -smp 1 -m 1536 \
    -nographic -no-reboot -monitor none -display none \
    -kernel xen.elf \
    -append "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=768M,max:768M dom0_max_vcpus=1 bootscrub=false" \
    -initrd "vmlinuz console=hvc0 earlyprintk=xen rdinit=/init,dom0-initrd.gz" \
    -serial file:serial-dom0.log > qemu.out 2>&1 || true
end=$(date +%s%N)
grep -E "DOM0_INIT|XENSTORE_UP|XEN_RING|XEN_CHECK|XL_|DOMU_|DOM0_DONE" serial-dom0.log || true
echo "QEMU ran $(((end - start) / 1000000)) ms (serial log: $W/serial-dom0.log)"
if ! grep -q DOM0_DONE serial-dom0.log; then
    echo "FAIL: dom0 did not finish"
    exit 1
fi
if grep -q XEN_RING_FAIL serial-dom0.log ||
    [ "$(grep -c 'XEN_CHECK .*client_rc=0 server_rc=0' serial-dom0.log)" -ne 6 ] ||
    [ "$(grep -c 'XEN_DOMU_CHECK .*server_rc=0' serial-dom0.log)" -ne 2 ] ||
    [ "$(grep -c 'DOMU_CLIENT .*rc=0' serial-dom0.log)" -ne 2 ]; then
    echo "FAIL: a Xen ring check failed"
    exit 1
fi
echo "PASS"
