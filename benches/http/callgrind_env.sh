# Sourced by callgrind.sh and callgrind_keys.sh: the environment the counted server runs in.
# Valgrind counts every iteration of a `rep stosb` / `rep movsb` as an instruction, and
# glibc's memset and memcpy switch to those above 2 KiB: actix-http's HTTP/1 decoder zeroes a
# 3 KiB header index three times a request, 9.35k of the bare handler's 41.4k "instructions" a
# request (23 %), for ~100 cycles on the hardware. With the thresholds out of reach glibc uses
# its vector loops, counted a 32-byte store at a time: ~640 instructions a request, closer to
# what the hardware spends. Counts taken before the twentieth session did not set this.
export GLIBC_TUNABLES=glibc.cpu.x86_rep_stosb_threshold=0x7fffffff:glibc.cpu.x86_rep_movsb_threshold=0x7fffffff
