# The lab's scenarios, in the order make test-lab runs them. Each is a
# function scenario_NAME run by run_scenario (Tests/Lab/host/checks.sh);
# `gx HOST SECONDS CMD` runs CMD in a guest (Tests/Lab/guest/lib.sh).
# Waits poll with generous deadlines: guests run QEMU under TCG in TCG.

ALL_SCENARIOS=(kernel_paths)

VM1=6c61620a-0000-4000-8000-000000000001
VM2=6c61620a-0000-4000-8000-000000000002

# Both hosts' kernels reach the LU through their own iSCSI sessions, and
# both can write while nobody holds it.
scenario_kernel_paths() {
    check "LUN 1 starts free" free 1
    local out
    out=$(gx a 60 disk_write /dev/lab/lun1); check "a's kernel writes a free LU ($out)" contains "$out" "WRITE OK"
    out=$(gx b 60 disk_write /dev/lab/lun1); check "b's kernel writes a free LU ($out)" contains "$out" "WRITE OK"
}
