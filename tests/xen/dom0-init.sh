#!/bin/busybox sh
# /init of dom0 in the Xen-under-QEMU harness (run-xen-qemu.sh). Starts the minimal toolstack
# (xenstored, xen-init-dom0, xenconsoled), runs every check, prints one line per check
#   XEN_RESULT <name> rc=<exit status> seconds=<uptime at start>-<uptime at end>
# and powers the machine off. The harness decides from these lines; everything else in the
# serial log is for people. No `timeout` wrappers: every vdist call in the checks has its own
# deadline, and the harness's QEMU time limit catches a hang (busybox's timeout applet
# re-executes itself through /proc/self/exe and was seen to crash here).
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
up() { cut -d' ' -f1 /proc/uptime; }
result() {  # result NAME RC STARTED
    echo "XEN_RESULT $1 rc=$2 seconds=$3-$(up)"
}
echo "DOM0_INIT uptime=$(up)"
for m in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do
    insmod /lib/modules/$m.ko || echo "insmod $m failed"
done
mkdir -p /proc/xen /run/xenstored /run/xen /var/lib/xenstored /var/lib/xen /var/log/xen
mount -t xenfs xenfs /proc/xen
xenstored --pid-file /run/xenstored.pid || echo "xenstored failed"
xen-init-dom0 || echo "xen-init-dom0 failed"
echo "XENSTORE_UP uptime=$(up)"

# --- dom0 <-> dom0 (domid 0 talks to itself) ---------------------------------------------------

# The transport's own test suite, both ends in one process on the real Xen backend. A skipped
# test means the backend did not open: that fails here.
started=$(up)
xen_ring_channel_test --gtest_brief=1 $(cat /etc/vdist-suite-args) > /tmp/suite.log 2>&1
rc=$?
cat /tmp/suite.log
if grep -q "SKIPPED" /tmp/suite.log || ! grep -q "PASSED" /tmp/suite.log; then rc=1; fi
result suite $rc "$started"

# pair NAME SERVER CLIENT "LEFT RIGHT": one echo exchange between two processes. Ports stay
# short: libxenvchan formats "<path>/event-channel" into a 64-byte buffer and cuts longer paths.
pair() {
    port=$1
    path=/local/domain/0/data/vchan/0/$port
    started=$(up)
    if [ "$2" = vdist ]; then xen_ring_check server 0 "$port" 1048576 $4 &
    else libxenvchan_peer server 0 "$path" 1048576 $4 & fi
    server=$!
    if [ "$3" = vdist ]; then xen_ring_check client 0 "$port" 1048576
    else libxenvchan_peer client 0 "$path" 1048576; fi
    client_rc=$?
    wait $server
    server_rc=$?
    result "$port-$2-server-$3-client" $((client_rc | server_rc)) "$started"
}
for sizes in "1024 2048" "65536 65536"; do
    pair "vv${sizes% *}" vdist vdist "$sizes"
    pair "vl${sizes% *}" vdist libxenvchan "$sizes"
    pair "lv${sizes% *}" libxenvchan vdist "$sizes"
done

# await_streaming PORT: wait (up to 90 s) until the sink has received 1 MiB on PORT.
await_streaming() {
    for i in $(seq 900); do
        [ -e "/tmp/vdist-streaming.$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# killed NAME PORT VICTIM: a process dies by kill -9 mid-stream; the survivor must see
# peer_gone through the unmap notification (the dead process's kernel zeroes its live byte in
# the control page and fires the event channel). VICTIM is server or client.
killed() {
    started=$(up)
    if [ "$3" = client ]; then
        xen_ring_check sink-server 0 "$2" 1024 2048 &
        survivor=$!
        xen_ring_check source-client 0 "$2" &
        victim=$!
    else
        xen_ring_check source-server 0 "$2" 1024 2048 &
        victim=$!
        xen_ring_check sink-client 0 "$2" &
        survivor=$!
    fi
    await_streaming "$2"
    kill -9 $victim
    wait $survivor
    rc=$?
    wait $victim
    result "$1" $rc "$started"
}
killed client-killed kc client
killed server-killed ks server

# --- dom0 <-> domU ----------------------------------------------------------------------------
# The domU's /init (domu-init.sh) runs its side of each step in the same order. Servers for
# peer domid 1 are created only once the domain exists (C xenstored ignores a permission entry
# naming a domain created after the node).
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
started=$(up)
xl create /root/domu.cfg
result xl-create $? "$started"

# A vdist client in the domU, then Debian's libxenvchan client in the domU, against vdist
# servers here.
for sizes in "1024 2048" "65536 65536"; do
    started=$(up)
    xen_ring_check server 1 "du${sizes% *}" 1048576 $sizes
    result "du${sizes% *}-vdist-server-domU-vdist-client" $? "$started"
done
for sizes in "1024 2048" "65536 65536"; do
    started=$(up)
    xen_ring_check server 1 "dl${sizes% *}" 1048576 $sizes
    result "dl${sizes% *}-vdist-server-domU-libxenvchan-client" $? "$started"
done
# Debian's libxenvchan server in the domU, a vdist client here.
for size in 1024 65536; do
    started=$(up)
    xen_ring_check client 1 "ld$size" 1048576
    result "ld$size-domU-libxenvchan-server-vdist-client" $? "$started"
done
# The domU's client streams until its whole domain is destroyed: no process of it unmaps
# anything, so only XenStore's @releaseDomain (watched by the server's event port) tells.
started=$(up)
xen_ring_check sink-server 1 dd 1024 2048 &
sink=$!
if await_streaming dd; then xl destroy vdist-domu; fi
wait $sink
result domU-destroyed $? "$started"

echo "--- domU console:"; cat /var/log/xen/console/guest-vdist-domu.log
echo "DOM0_DONE uptime=$(up)"
poweroff -f
