// The AVX-512 kernels compiled again with -mavx512vnni: the I8 / I4 x int8-activation dot
// products use vpdpbusd (one instruction per 64 multiply-adds) instead of vpmaddubsw +
// vpmaddwd. gemm.cpp picks this table on CPUs with AVX512_VNNI. Re-including the source keeps
// one copy of the code; everything in it is in anonymous namespaces (kernel_table.h).
#include "kernels/gemm_avx512.cpp"  // NOLINT(bugprone-suspicious-include)
