#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""unit_sandbox.py UNIT -- CMD [ARGS...]: exec CMD under the kernel-side
restrictions of the systemd unit UNIT that a test without systemd as PID 1
cannot get from systemd itself (test_package runs the packaged weftd so):

- SystemCallFilter= (every line, in order: the first not inverted makes an
  allow list, later ones add, "~" ones remove; groups expanded by
  `systemd-analyze syscall-filter`), SystemCallErrorNumber= (the errno a
  refused call gets), SystemCallArchitectures=native (other ABIs refused);
- RestrictAddressFamilies= (socket() with another family: EAFNOSUPPORT,
  as systemd does);
- MemoryDenyWriteExecute=yes (the kernel's PR_SET_MDWE, which refuses the
  same mappings systemd's seccomp rules refuse: writable and executable
  at once, or made executable later).

x86_64 only (the syscall numbers come from <sys/syscall.h> through gcc).
The filter is a seccomp BPF program built here: the architecture check,
then socket()'s family check, then one comparison per allowed call.
"""
import ctypes
import errno
import os
import re
import socket
import struct
import subprocess
import sys

AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
# BPF opcodes
LD_W_ABS, JEQ_K, JGE_K, JA, RET_K = 0x20, 0x15, 0x35, 0x05, 0x06


def unit_values(path, key):
    vals = []
    for line in open(path):
        m = re.match(r"\s*%s=(.*)$" % key, line)
        if m:
            vals.append(m.group(1).strip())
    return vals


def expand(name, seen):
    """Syscall names of a group (@name) or the name itself."""
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    names = set()
    for l in out[1:]:
        l = l.strip()
        if not l or l.startswith("#"):
            continue
        names |= expand(l, seen)
    return names


def syscall_numbers():
    src = subprocess.run(["gcc", "-E", "-dM", "-"], input="#include <sys/syscall.h>\n",
                         capture_output=True, text=True, check=True).stdout
    nr = {}
    for m in re.finditer(r"#define __NR_(\w+) (\d+)", src):
        nr[m.group(1)] = int(m.group(2))
    return nr


def families(vals):
    fams = set()
    for v in vals:
        for f in v.split():
            fams.add(getattr(socket, f, None) or {"AF_XDP": 44}[f])
    return fams


def build(unit):
    """The filter's instructions (struct sock_filter, packed)."""
    allowed = None
    for v in unit_values(unit, "SystemCallFilter"):
        deny = v.startswith("~")
        names = set()
        for n in v.lstrip("~").split():
            names |= expand(n, set())
        if allowed is None:
            if deny:
                sys.exit("unit_sandbox: deny-list filters are not emulated")
            allowed = set(expand("@default", set()))  # as systemd does
        allowed = allowed - names if deny else allowed | names
    err = unit_values(unit, "SystemCallErrorNumber")
    refuse = SECCOMP_RET_ERRNO | (getattr(errno, err[-1]) if err else errno.EPERM)
    fams = sorted(families(unit_values(unit, "RestrictAddressFamilies")))
    nrs = syscall_numbers()
    prog = []

    def ins(code, k, jt=0, jf=0):
        prog.append(struct.pack("HBBI", code, jt, jf, k))

    # native ABI only (x32 calls have bit 30 set)
    ins(LD_W_ABS, 4)
    ins(JEQ_K, AUDIT_ARCH_X86_64, 1, 0)
    ins(RET_K, refuse)
    ins(LD_W_ABS, 0)
    ins(JGE_K, 0x40000000, 0, 1)
    ins(RET_K, refuse)
    if fams:
        # socket(family, ...): the family is args[0]'s low 32 bits (offset 16)
        ins(JEQ_K, nrs["socket"], 0, len(fams) + 2)
        ins(LD_W_ABS, 16)
        for i, f in enumerate(fams):
            ins(JEQ_K, f, len(fams) - i, 0)
        ins(RET_K, SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT)
        ins(LD_W_ABS, 0)
    if allowed is None:
        ins(RET_K, SECCOMP_RET_ALLOW)
        return prog
    # One comparison per allowed call, in blocks (a jump reaches at most
    # 255 instructions ahead): each block jumps to its own ALLOW.
    ids = sorted({nrs[n] for n in allowed if n in nrs})
    for b in range(0, len(ids), 200):
        blk = ids[b:b + 200]
        for i, n in enumerate(blk):
            ins(JEQ_K, n, len(blk) - i, 0)
        ins(JA, 1)
        ins(RET_K, SECCOMP_RET_ALLOW)
    ins(RET_K, refuse)
    return prog


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: unit_sandbox.py UNIT -- CMD [ARGS...]")
    unit, cmd = sys.argv[1], sys.argv[3:]
    prog = build(unit)
    libc = ctypes.CDLL(None, use_errno=True)
    mdwe = [v for v in unit_values(unit, "MemoryDenyWriteExecute") if v]
    if mdwe and mdwe[-1] in ("yes", "true", "1"):
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            sys.exit("unit_sandbox: PR_SET_MDWE: %s" % os.strerror(ctypes.get_errno()))
    buf = ctypes.create_string_buffer(b"".join(prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fp = SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fp), 0, 0) != 0:
        sys.exit("unit_sandbox: seccomp: %s" % os.strerror(ctypes.get_errno()))
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
