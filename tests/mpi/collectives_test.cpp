// Every collective against exact expected values: on the MPI world, on the single-rank
// communicator, and with the chunked (> max count) paths forced by a tiny max count.
// Values are small integers in float, so sums are exact.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "comm/mpi_communicator.h"
#include "comm/session.h"
#include "mpi_test_env.h"

namespace dsrt::test {
namespace {

using comm::Communicator;

template <class T, class F>
::testing::AssertionResult all_equal(const T* got, int64_t n, F expected, const std::string& label) {
  for (int64_t i = 0; i < n; ++i) {
    const auto want = expected(i);
    if (got[i] != want)
      return ::testing::AssertionFailure() << label << ": element " << i << " of " << n << " is " << +got[i]
                                           << ", expected " << +want;
  }
  return ::testing::AssertionSuccess();
}

uint8_t pattern(int src, int dst, int64_t i) { return static_cast<uint8_t>(src * 31 + dst * 17 + i * 7 + (i >> 8)); }

std::vector<int64_t> float_sizes(int64_t large) { return {0, 1, 7, 1001, large}; }

void check_all_reduce(Communicator& c, int64_t n) {
  const int me = c.rank(), P = c.size();
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>((me + 1) * (i % 13 + 1));
  c.all_reduce_sum(v.data(), n, "test all_reduce");
  const float ranks_sum = P * (P + 1) / 2.f;
  EXPECT_TRUE(all_equal(v.data(), n, [&](int64_t i) { return ranks_sum * (i % 13 + 1); }, "all_reduce n=" + std::to_string(n)));
}

void check_all_gather(Communicator& c, int64_t n, bool in_place) {
  const int me = c.rank(), P = c.size();
  std::vector<float> send(n), recv(P * n, -1.f);
  float* s = in_place ? recv.data() + me * n : send.data();
  for (int64_t i = 0; i < n; ++i) s[i] = static_cast<float>(me * 1000 + i % 1000);
  c.all_gather(s, n, recv.data(), "test all_gather");
  EXPECT_TRUE(all_equal(recv.data(), P * n, [&](int64_t j) { return static_cast<float>((j / n) * 1000 + (j % n) % 1000); },
                        "all_gather n=" + std::to_string(n) + (in_place ? " in place" : "")));
}

void check_reduce_scatter(Communicator& c, int64_t n, bool in_place) {
  const int me = c.rank(), P = c.size();
  std::vector<float> send(P * n), recv(n, -1.f);
  for (int b = 0; b < P; ++b)
    for (int64_t i = 0; i < n; ++i) send[b * n + i] = static_cast<float>((me + 1) * (b + 1) + i % 5);
  float* out = in_place ? send.data() : recv.data();
  c.reduce_scatter_sum(send.data(), out, n, "test reduce_scatter");
  const float ranks_sum = P * (P + 1) / 2.f;
  EXPECT_TRUE(all_equal(out, n, [&](int64_t i) { return ranks_sum * (me + 1) + P * (i % 5); },
                        "reduce_scatter n=" + std::to_string(n) + (in_place ? " in place" : "")));
}

void check_counts(Communicator& c, bool in_place) {
  const int me = c.rank(), P = c.size();
  std::vector<int64_t> send(P), recv(P, -1);
  for (int r = 0; r < P; ++r) send[r] = me * 100 + r + (int64_t{1} << 40);  // > 32 bits
  int64_t* out = in_place ? send.data() : recv.data();
  c.all_to_all_counts(send.data(), out, "test counts");
  EXPECT_TRUE(all_equal(out, P, [&](int64_t r) { return r * 100 + me + (int64_t{1} << 40); }, "all_to_all_counts"));
}

// Uneven byte counts (some zero, including to self), send blocks in reverse peer order with gaps,
// receive blocks in order with gaps that must stay untouched; counts exchanged first.
void check_all_to_all_v(Communicator& c, int64_t base) {
  const int me = c.rank(), P = c.size();
  auto bytes = [&](int s, int d) -> int64_t { return (s + 2 * d + 1) % 3 == 0 ? 0 : base + 37 * s + 11 * d; };
  std::vector<int64_t> sb(P), so(P), rb(P), ro(P);
  int64_t off = 0;
  for (int d = P - 1; d >= 0; --d) so[d] = off, sb[d] = bytes(me, d), off += sb[d] + 3;
  std::vector<uint8_t> send(off, 0xCD);
  for (int d = 0; d < P; ++d)
    for (int64_t i = 0; i < sb[d]; ++i) send[so[d] + i] = pattern(me, d, i);
  c.all_to_all_counts(sb.data(), rb.data(), "test a2av counts");
  EXPECT_TRUE(all_equal(rb.data(), P, [&](int64_t s) { return bytes(static_cast<int>(s), me); }, "a2av counts"));
  off = 0;
  for (int s = 0; s < P; ++s) ro[s] = off, off += rb[s] + 5;
  std::vector<uint8_t> recv(off, 0xAB);
  c.all_to_all_v(send.data(), sb.data(), so.data(), recv.data(), rb.data(), ro.data(), "test all_to_all_v");
  for (int s = 0; s < P; ++s) {
    const std::string label = "all_to_all_v base=" + std::to_string(base) + " from " + std::to_string(s);
    EXPECT_TRUE(all_equal(recv.data() + ro[s], rb[s], [&](int64_t i) { return pattern(s, me, i); }, label));
    EXPECT_TRUE(all_equal(recv.data() + ro[s] + rb[s], 5, [](int64_t) { return uint8_t{0xAB}; }, label + " gap"));
  }
}

// Two started exchanges (the micro-batch overlap's use): a blocking collective and progress()
// calls between start and wait, waited in reverse order; each delivers its own bytes.
void check_async_all_to_all_v(Communicator& c, int64_t base) {
  const int me = c.rank(), P = c.size();
  struct X {
    std::vector<int64_t> sb, so, rb, ro;
    std::vector<uint8_t> send, recv;
    int ticket = -1;
  } x[2];
  for (int k = 0; k < 2; ++k) {
    auto bytes = [&](int s, int d) -> int64_t { return (s + d + k) % 3 == 0 ? 0 : base + 13 * s + 5 * d + k; };
    X& e = x[k];
    e.sb.resize(P), e.so.resize(P), e.rb.resize(P), e.ro.resize(P);
    int64_t off = 0;
    for (int d = 0; d < P; ++d) e.so[d] = off, e.sb[d] = bytes(me, d), off += e.sb[d];
    e.send.resize(std::max<int64_t>(off, 1));
    for (int d = 0; d < P; ++d)
      for (int64_t i = 0; i < e.sb[d]; ++i) e.send[e.so[d] + i] = pattern(me + 7 * k, d, i);
    off = 0;
    for (int s = 0; s < P; ++s) e.ro[s] = off, e.rb[s] = bytes(s, me), off += e.rb[s];
    e.recv.assign(std::max<int64_t>(off, 1), 0xAB);
  }
  for (X& e : x)
    e.ticket = c.start_all_to_all_v(e.send.data(), e.sb.data(), e.so.data(), e.recv.data(), e.rb.data(), e.ro.data(),
                                    "test async a2av");
  float v = 1.0f;
  c.all_reduce_sum(&v, 1, "test between");
  EXPECT_EQ(v, static_cast<float>(P));
  c.progress();
  c.wait_all_to_all_v(x[1].ticket);
  c.progress();
  c.wait_all_to_all_v(x[0].ticket);
  for (int k = 0; k < 2; ++k)
    for (int s = 0; s < P; ++s)
      EXPECT_TRUE(all_equal(x[k].recv.data() + x[k].ro[s], x[k].rb[s], [&](int64_t i) { return pattern(s + 7 * k, me, i); },
                            "async all_to_all_v #" + std::to_string(k) + " base=" + std::to_string(base) + " from " +
                                std::to_string(s)));
}

void check_broadcast(Communicator& c, int64_t large_bytes) {
  const int me = c.rank(), P = c.size();
  for (int root = 0; root < P; ++root) {
    for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1001}, large_bytes}) {
      if (n == large_bytes && root != P - 1) continue;  // one large broadcast is enough
      std::vector<uint8_t> buf(n, 0);
      if (me == root)
        for (int64_t i = 0; i < n; ++i) buf[i] = pattern(root, 0, i);
      c.broadcast(buf.data(), n, root, "test broadcast");
      EXPECT_TRUE(all_equal(buf.data(), n, [&](int64_t i) { return pattern(root, 0, i); },
                            "broadcast n=" + std::to_string(n) + " root " + std::to_string(root)));
    }
  }
}

}  // namespace

void check_collectives(Communicator& c, int64_t large_floats) {
  SCOPED_TRACE("communicator rank " + std::to_string(c.rank()) + " of " + std::to_string(c.size()));
  const int P = c.size();
  for (int64_t n : float_sizes(large_floats)) check_all_reduce(c, n);
  for (int64_t n : float_sizes(large_floats / P)) {
    check_all_gather(c, n, false);
    check_all_gather(c, n, true);
    check_reduce_scatter(c, n, false);
    check_reduce_scatter(c, n, true);
  }
  check_counts(c, false);
  check_counts(c, true);
  for (int64_t base : {int64_t{0}, int64_t{1}, int64_t{1000}, large_floats * 4 / P}) check_all_to_all_v(c, base);
  for (int64_t base : {int64_t{0}, int64_t{1000}, large_floats * 4 / P}) check_async_all_to_all_v(c, base);
  check_broadcast(c, large_floats * 4);
  c.barrier("test barrier");
}

namespace {

constexpr int64_t kLarge = 4 << 20;  // 4M floats = 16 MB

TEST(MpiEnv, LaunchedByMpi) {
  EXPECT_TRUE(comm::MpiSession::launched_by_mpi());
  EXPECT_GE(world().size(), 1);
  EXPECT_FALSE(world().host().empty());
}

TEST(Collectives, MpiWorld) { check_collectives(world(), kLarge); }

TEST(Collectives, SingleRank) {
  auto one = comm::make_single_rank();
  check_collectives(*one, kLarge);
}

// A tiny max count forces every chunked path: several MPI calls per collective, strided
// datatypes for all_gather, per-root reductions for reduce_scatter, point-to-point all_to_all_v.
TEST(Collectives, ChunkedPaths) {
  auto c = comm::MpiCommunicator::world();
  c->set_max_count(1000);
  check_collectives(*c, 20011);
}

TEST(Collectives, SplitOrdersByKey) {
  const int me = world().rank(), P = world().size();
  auto half = world().split(me % 2, P - me);  // reversed key: highest world rank first
  float mine = static_cast<float>(me);
  std::vector<float> all(half->size());
  half->all_gather(&mine, 1, all.data(), "split order");
  for (int i = 0; i < half->size(); ++i) {
    int expected = -1, seen = 0;  // the i-th largest world rank with my parity
    for (int r = P - 1; r >= 0; --r)
      if (r % 2 == me % 2 && seen++ == i) expected = r;
    EXPECT_EQ(all[i], expected) << "position " << i;
  }
  check_collectives(*half, 10007);
}

TEST(Collectives, ErrorsNameTheCallWhatRankAndHost) {
  std::vector<char> buf(8);
  try {
    world().broadcast(buf.data(), 8, world().size(), "bad root test");  // every rank: same bad root
    ADD_FAILURE() << "no exception";
  } catch (const comm::MpiError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("MPI_Ibcast"), std::string::npos) << m;
    EXPECT_NE(m.find("'bad root test'"), std::string::npos) << m;
    EXPECT_NE(m.find("rank " + std::to_string(world().rank())), std::string::npos) << m;
    EXPECT_NE(m.find("host " + world().host()), std::string::npos) << m;
    EXPECT_NE(m.find("MPI_ERR_ROOT"), std::string::npos) << m;
  }
  float x = 0;
  EXPECT_THROW(world().all_reduce_sum(&x, -1, "negative"), std::invalid_argument);
  world().barrier("after errors");  // the communicator still works
}

}  // namespace
}  // namespace dsrt::test
