#!/usr/bin/env bash
# The R kernel (sparkbook.kernels.r): R, IRkernel, reticulate and ggplot2 from Debian's packages
# (these machines reach no CRAN). Use the machine's R when it has them; install Debian's when
# something is missing and we may. Without Recommends: R's compilers and docs are not needed to
# run a kernel, and leaving them out makes ~60 packages of ~1,500.
set -euo pipefail
PACKAGES=(r-base-core r-cran-irkernel r-cran-reticulate r-cran-ggplot2)
have() { command -v Rscript >/dev/null 2>&1 && Rscript -e 'for (p in c("IRkernel", "reticulate", "ggplot2")) if (!requireNamespace(p, quietly = TRUE)) quit(status = 1)' >/dev/null 2>&1; }
if have; then
  echo "R $(Rscript -e 'cat(format(getRversion()))' 2>/dev/null) with IRkernel, reticulate, ggplot2: ok"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "R or its kernel packages not found: installing Debian's ${PACKAGES[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  have && echo "R $(Rscript -e 'cat(format(getRversion()))'): ok" && exit 0
fi
echo "The R kernel needs R with IRkernel, reticulate and ggplot2: install Debian's ${PACKAGES[*]}." >&2
exit 1
