# The source rewrite of the CUDA-on-CPU emulator (tests/cuemu/README.md): what
# macros cannot do, line by line, so that line numbers stay (the Makefile puts
# `#line 1 "cuda/x.cu"` on top, and messages and debug info name the original).
#
#   kernel<<<grid, block[, smem[, stream]]>>>(args)
#     -> cuemu::Launch(__FILE__, __LINE__, "kernel", kernel, grid, block[, smem[, stream]])(args)
#   extern __shared__ [__align__(N)] T name[];
#     -> T *name = (T *)cuemu::dynamic_shared(CUEMU_SITE);
#   __shared__ [__align__(N)] T name[dims];     (one declarator, no initialiser)
#     -> static char cuemu_tag_name; auto &name = cuemu::shared_var<T[dims]>(&cuemu_tag_name, __FILE__, __LINE__, "name");
#
# A launch must sit on one line, as must a __shared__ declaration; anything else
# named __shared__ stops the build (cuemu.h).
s/([A-Za-z_][A-Za-z0-9_:]*(<[^<>;()]*>)?)[[:space:]]*<<<[[:space:]]*/cuemu::Launch(__FILE__, __LINE__, "\1", \1, /g
s/[[:space:]]*>>>[[:space:]]*\(/)(/g
s/extern[[:space:]]+__shared__[[:space:]]+(__align__\([0-9]+\)[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*([[:space:]]+[A-Za-z_][A-Za-z0-9_]*)*)[[:space:]]+([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\[\][[:space:]]*;/\2 *\4 = (\2 *)cuemu::dynamic_shared(CUEMU_SITE);/
s/^([[:space:]]*)__shared__[[:space:]]+(__align__\([0-9]+\)[[:space:]]+)?([A-Za-z_][A-Za-z0-9_:<>]*([[:space:]]+[A-Za-z_][A-Za-z0-9_:<>]*)*)[[:space:]]+([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*((\[[^];]*\])*)[[:space:]]*;/\1static char cuemu_tag_\5; auto \&\5 = cuemu::shared_var<\3\6>(\&cuemu_tag_\5, __FILE__, __LINE__, "\5");/
