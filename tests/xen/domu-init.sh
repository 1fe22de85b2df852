#!/bin/busybox sh
# /init of the PV domU (domid 1) in the Xen-under-QEMU harness: its side of each dom0 <-> domU
# step in dom0-init.sh, in the same order. Its console is printed into dom0's serial log.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in xen-evtchn xen-gntdev xen-gntalloc; do insmod /lib/modules/$m.ko; done
echo "DOMU_UP uptime=$(cut -d' ' -f1 /proc/uptime)"
for port in du1024 du65536; do
    xen_ring_check client 0 $port 1048576
    echo "DOMU_STEP $port rc=$?"
done
for port in dl1024 dl65536; do
    libxenvchan_peer client 0 /local/domain/0/data/vchan/1/$port 1048576
    echo "DOMU_STEP $port rc=$?"
done
for sizes in "1024 2048" "65536 65536"; do
    libxenvchan_peer server 0 /local/domain/1/data/vchan/0/ld${sizes% *} 1048576 $sizes
    echo "DOMU_STEP ld${sizes% *} rc=$?"
done
# Streams until dom0 destroys this domain.
xen_ring_check source-client 0 dd
echo "DOMU_STEP dd rc=$? (should never be printed)"
poweroff -f
