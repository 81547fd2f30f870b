#include "runtime/coordinator.h"

#include <fmt/format.h>

#include "runtime/error.h"

namespace dsrt {

Executor::Executor(Model& model, comm::Communicator& world, DataParallel dp, int64_t cache_tokens, int64_t block_size)
    : model_(model),
      world_(world),
      dp_(dp),
      cache_(model.config().num_hidden_layers, model.config().kv_cache_dim(), block_size,
             std::max<int64_t>(1, (cache_tokens + block_size - 1) / block_size)) {}

void Executor::execute(const proto::StepPlan& plan, std::vector<float>& logits) {
  for (uint64_t key : plan.release()) {
    auto it = seqs_.find(key);
    if (it == seqs_.end()) continue;  // held by another group
    cache_.release(it->second);
    seqs_.erase(it);
  }
  logits.clear();
  if (plan.chunks_size() == 0) return;  // only releases: no layer to run
  std::vector<Model::Chunk> mine;
  std::vector<int64_t> rows_per_group(dp_.size, 0);
  int64_t step_tokens = 0;  // over all groups: the same on every rank
  for (const proto::Chunk& c : plan.chunks()) {
    const int64_t n = c.tokens_size();
    step_tokens += n;
    if (c.dp_group() < 0 || c.dp_group() >= dp_.size)
      throw Error(fmt::format("step {}: sequence {} assigned to group {} of {}", plan.step(), c.seq(), c.dp_group(), dp_.size));
    rows_per_group[c.dp_group()] += c.all_logits() ? n : 1;
    if (c.dp_group() != dp_.rank) continue;
    LatentKVCache::SeqId id;
    if (c.start_pos() == 0) {
      if (seqs_.count(c.seq())) throw std::logic_error(fmt::format("sequence {} started twice", c.seq()));
      id = seqs_[c.seq()] = cache_.create();
    } else {
      auto it = seqs_.find(c.seq());
      if (it == seqs_.end()) throw std::logic_error(fmt::format("sequence {} continues but was never started", c.seq()));
      id = it->second;
    }
    if (!cache_.reserve(id, c.start_pos() + n))
      throw Error(fmt::format("latent KV cache full: sequence {} needs {} positions, {} of {} blocks free", c.seq(),
                              c.start_pos() + n, cache_.free_blocks(), cache_.total_blocks()));
    mine.push_back({id, c.start_pos(), c.tokens().data(), n, c.all_logits()});
  }
  model_.forward(mine, cache_, local_logits_, step_tokens / world_.size());

  // Logits to rank 0, in plan order.
  const int64_t V = model_.config().vocab_size;
  if (dp_.size == 1) {
    if (world_.rank() == 0) logits.swap(local_logits_);
    return;
  }
  const int P = world_.size(), me = world_.rank();
  const bool leader = me % dp_.tp == 0;
  std::vector<int64_t> send_bytes(P, 0), send_off(P, 0), recv_bytes(P, 0), recv_off(P, 0);
  if (leader) send_bytes[0] = static_cast<int64_t>(local_logits_.size()) * 4;
  int64_t total = 0;
  if (me == 0)
    for (int g = 0; g < dp_.size; ++g) {
      recv_off[g * dp_.tp] = total * 4;
      recv_bytes[g * dp_.tp] = rows_per_group[g] * V * 4;
      total += rows_per_group[g] * V;
    }
  recv_.resize(std::max<int64_t>(total, 1));
  world_.all_to_all_v(local_logits_.data(), send_bytes.data(), send_off.data(), recv_.data(), recv_bytes.data(),
                      recv_off.data(), "logits to rank 0");
  if (me != 0) return;
  logits.resize(total);
  std::vector<int64_t> at(dp_.size, 0);  // next row of each group's block
  for (int g = 1; g < dp_.size; ++g) at[g] = at[g - 1] + rows_per_group[g - 1];
  int64_t row = 0;
  for (const proto::Chunk& c : plan.chunks()) {
    const int64_t n = c.all_logits() ? c.tokens_size() : 1;
    std::copy_n(recv_.data() + at[c.dp_group()] * V, n * V, logits.data() + row * V);
    at[c.dp_group()] += n;
    row += n;
  }
}

namespace {

void broadcast_plan(comm::Communicator& world, proto::StepPlan& plan) {
  std::string bytes = plan.SerializeAsString();
  int64_t n = static_cast<int64_t>(bytes.size());
  world.broadcast(&n, sizeof(n), 0, "step plan size");
  world.broadcast(bytes.data(), n, 0, "step plan");
}

}  // namespace

void Coordinator::step(proto::StepPlan& plan, std::vector<float>& logits) {
  plan.set_step(next_step_++);
  if (world_.size() > 1) broadcast_plan(world_, plan);
  exec_.execute(plan, logits);
}

Coordinator::~Coordinator() {
  if (world_.size() == 1) return;
  proto::StepPlan stop;
  stop.set_shutdown(true);
  try {
    broadcast_plan(world_, stop);
  } catch (...) {  // a failing job is ended by the watchdog; nothing more to do here
  }
}

void run_worker(Executor& exec, comm::Communicator& world) {
  std::string bytes;
  std::vector<float> logits;
  for (;;) {
    int64_t n = 0;
    world.broadcast(&n, sizeof(n), 0, "step plan size");
    bytes.resize(n);
    world.broadcast(bytes.data(), n, 0, "step plan");
    proto::StepPlan plan;
    if (!plan.ParseFromString(bytes)) throw std::runtime_error("worker: step plan does not parse");
    if (plan.shutdown()) return;
    exec.execute(plan, logits);
  }
}

}  // namespace dsrt
