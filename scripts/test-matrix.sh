#!/usr/bin/env bash
# The suite on the CPU code paths users' machines take: ATen's kernel set (ATEN_CPU_CAPABILITY
# default / avx2 / avx512), OpenBLAS's kernels (OPENBLAS_CORETYPE Haswell / SkylakeX) and the thread
# count (MOOD_NUM_THREADS 1 / 2). One row is one full `npm test` with those variables set.
#
#   bash scripts/test-matrix.sh            # the 6 pairwise rows: every pair of levels of any two
#                                          # variables appears in some row (3 x 2 x 2 in 6 runs)
#   bash scripts/test-matrix.sh --full     # all 12 combinations
#   bash scripts/test-matrix.sh --row default-Haswell-1   # one row (CI runs this one)
#   ... -- <args for npm test / vitest>    # e.g. -- tests/models to run a part on every row
#
# A capability the CPU lacks (avx512 on an AVX2-only machine) is skipped with a note: ATen would
# fall back to the best one it has, so that row would repeat another. Prints one line per row and a
# summary; exits non-zero when any row failed. Logs: tmp/test-matrix/<row>.log.
set -uo pipefail
cd "$(dirname "$0")/.."

pairwise=(default-Haswell-1 default-SkylakeX-2 avx2-Haswell-2 avx2-SkylakeX-1 avx512-Haswell-1 avx512-SkylakeX-2)
rows=("${pairwise[@]}")
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --full) rows=(); for c in default avx2 avx512; do for k in Haswell SkylakeX; do for t in 1 2; do rows+=("$c-$k-$t"); done; done; done ;;
    --row) rows=("$2"); shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "test-matrix: unknown argument '$1' (--full, --row CAP-CORETYPE-THREADS, -- args)" >&2; exit 2 ;;
  esac
  shift
done

cpu_has() { grep -qw "$1" /proc/cpuinfo; }
mkdir -p tmp/test-matrix
failed=0
summary=()
for row in "${rows[@]}"; do
  IFS=- read -r cap core threads <<<"$row"
  case "$cap" in default|avx2|avx512) ;; *) echo "test-matrix: bad capability '$cap' in '$row'" >&2; exit 2 ;; esac
  case "$core" in Haswell|SkylakeX) ;; *) echo "test-matrix: bad OpenBLAS core type '$core' in '$row'" >&2; exit 2 ;; esac
  case "$threads" in 1|2) ;; *) echo "test-matrix: bad thread count '$threads' in '$row'" >&2; exit 2 ;; esac
  if [ "$cap" = avx512 ] && ! cpu_has avx512f; then summary+=("$row: skipped (this CPU has no AVX-512)"); continue; fi
  if [ "$core" = SkylakeX ] && ! cpu_has avx512f; then summary+=("$row: skipped (SkylakeX kernels need AVX-512)"); continue; fi
  if { [ "$cap" = avx2 ] || [ "$core" = Haswell ]; } && ! cpu_has avx2; then summary+=("$row: skipped (this CPU has no AVX2)"); continue; fi
  log="tmp/test-matrix/$row.log"
  echo "== $row: ATEN_CPU_CAPABILITY=$cap OPENBLAS_CORETYPE=$core MOOD_NUM_THREADS=$threads"
  start=$(date +%s)
  ATEN_CPU_CAPABILITY=$cap OPENBLAS_CORETYPE=$core MOOD_NUM_THREADS=$threads npm test -- "${extra[@]}" >"$log" 2>&1
  rc=$?
  line=$(grep -E '^Tests: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  [ -n "$line" ] || line="no summary line (see $log)"
  if [ $rc -ne 0 ]; then
    failed=1
    summary+=("$row: FAILED: $line ($(( $(date +%s) - start )) s, $log)")
    grep -E '^ *(FAIL|×)|AssertionError' "$log" | head -n 20 | sed 's/^/    /'
  else
    summary+=("$row: $line ($(( $(date +%s) - start )) s)")
  fi
  echo "${summary[-1]}"
done
echo "== test matrix"
printf '%s\n' "${summary[@]}"
exit $failed
