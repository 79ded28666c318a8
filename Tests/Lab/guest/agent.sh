#!/bin/bash
# Serves the runner's commands in a lab guest: /lab/cmd/N.sh, run one after
# the other as root in /lab; output to /lab/out/N, exit status to
# /lab/rc/N (written last, by rename: the runner waits for it). The agent
# is PID 1, so it also reaps every orphan (libvirtd and QEMU daemonize).
mkdir -p /lab/out /lab/rc
cd /lab
next=1
while :; do
    if [ -e "/lab/cmd/$next.sh" ]; then
        bash "/lab/cmd/$next.sh" > "/lab/out/$next" 2>&1 < /dev/null
        echo $? > "/lab/rc/.$next"
        mv "/lab/rc/.$next" "/lab/rc/$next"
        next=$((next + 1))
    else
        sleep 0.1
    fi
done
