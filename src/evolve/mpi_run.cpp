// MPI transport for the run loop. Messages are MessagePack-encoded JSON (binary-safe for any code text)
// sent as MPI_BYTE; the tag names the kind. Rank 0's evaluation workers are threads of the run loop, so
// MPI runs at MPI_THREAD_SERIALIZED: every MPI call holds one mutex, and waiting is done by polling
// (MPI_Test / MPI_Iprobe, then a short sleep) so that an idle rank neither spins on a core nor blocks
// the other threads of rank 0.
#include "evolve/mpi_run.h"

#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/gpus.h"

namespace fs = std::filesystem;

namespace gqa::evolve {

namespace {

enum Tag : int { kSetup = 1, kReady = 2, kJob = 3, kResult = 4, kStop = 5 };

std::mutex g_mpi;  // one thread in MPI at a time

struct Msg {
  int source = -1, tag = -1;
  nlohmann::json body;
};

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(rc, text, &n);
  fail("mpi", "{}: {}", what, std::string(text, static_cast<size_t>(n)));
}

void pause() { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }

void send_msg(int dest, int tag, const nlohmann::json& body) {
  const std::vector<uint8_t> buf = nlohmann::json::to_msgpack(body);
  if (buf.size() > static_cast<size_t>(INT_MAX)) fail("mpi", "message of {} bytes to rank {} is too large", buf.size(), dest);
  MPI_Request req;
  {
    std::lock_guard<std::mutex> l(g_mpi);
    check(MPI_Isend(buf.data(), static_cast<int>(buf.size()), MPI_BYTE, dest, tag, MPI_COMM_WORLD, &req), "MPI_Isend");
  }
  for (;;) {
    int done = 0;
    {
      std::lock_guard<std::mutex> l(g_mpi);
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
    }
    if (done) return;
    pause();
  }
}

// The next message from `source` with `tag` (MPI_ANY_TAG: any).
Msg recv_msg(int source, int tag) {
  for (;;) {
    {
      std::lock_guard<std::mutex> l(g_mpi);
      int flag = 0;
      MPI_Status st;
      check(MPI_Iprobe(source, tag, MPI_COMM_WORLD, &flag, &st), "MPI_Iprobe");
      if (flag) {
        int n = 0;
        check(MPI_Get_count(&st, MPI_BYTE, &n), "MPI_Get_count");
        std::vector<uint8_t> buf(static_cast<size_t>(n));
        check(MPI_Recv(buf.data(), n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv");
        Msg m{st.MPI_SOURCE, st.MPI_TAG, {}};
        try {
          m.body = nlohmann::json::from_msgpack(buf);
        } catch (const nlohmann::json::exception& e) {
          fail("mpi", "rank {} sent an unreadable message (tag {}): {}", m.source, m.tag, e.what());
        }
        return m;
      }
    }
    pause();
  }
}

std::string processor_name() {
  char name[MPI_MAX_PROCESSOR_NAME];
  int n = 0;
  check(MPI_Get_processor_name(name, &n), "MPI_Get_processor_name");
  return std::string(name, static_cast<size_t>(n));
}

// This rank's place among the worker ranks (every rank but 0) on its host: 0, 1, ... Collective.
int local_worker_index(int rank) {
  MPI_Comm node;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  int node_size = 0, node_rank = 0;
  MPI_Comm_size(node, &node_size);
  MPI_Comm_rank(node, &node_rank);
  std::vector<int> ranks(static_cast<size_t>(node_size));
  check(MPI_Allgather(&rank, 1, MPI_INT, ranks.data(), 1, MPI_INT, node), "MPI_Allgather");
  MPI_Comm_free(&node);
  int index = 0;
  for (int i = 0; i < node_rank; ++i) index += ranks[static_cast<size_t>(i)] != 0;
  return index;
}

// The GPU a worker evaluates on: entry index % n of CUDA_VISIBLE_DEVICES when the launcher set it (Slurm
// does), else GPU index % (GPUs that nvidia-smi lists). Empty when the host has none.
std::string choose_device(int local_index) {
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES"); v && *v) {
    std::vector<std::string> ids;
    std::string cur;
    for (const char* p = v;; ++p) {
      if (*p == ',' || *p == '\0') {
        if (!cur.empty()) ids.push_back(cur);
        cur.clear();
        if (*p == '\0') break;
      } else {
        cur += *p;
      }
    }
    if (!ids.empty()) return ids[static_cast<size_t>(local_index) % ids.size()];
  }
  const int gpus = count_gpus();
  return gpus > 0 ? std::to_string(local_index % gpus) : "";
}

// A worker rank: setup, then one evaluation per job until told to stop.
void worker_main(int rank, int local_index) {
  const std::string host = processor_name();
  const Msg setup = recv_msg(0, MPI_ANY_TAG);
  if (setup.tag == kStop) return;
  if (setup.tag != kSetup) fail("mpi", "rank {}: expected the setup message, got tag {}", rank, setup.tag);

  nlohmann::json ready = {{"rank", rank}, {"host", host}, {"device", ""}};
  std::string device, work_dir;
  EvaluateFn evaluate;
  try {
    const EvolveConfig cfg = parse_config(setup.body.at("config_text").get<std::string>(), setup.body.at("config_name").get<std::string>());
    const Target target = parse_target(setup.body.at("target").get<std::string>());
    if (target == Target::Cuda) {
      device = choose_device(local_index);
      if (device.empty()) fail("evolve", "no GPU on host {} (nvidia-smi -L lists none and CUDA_VISIBLE_DEVICES is unset)", host);
    }
    const char* tmp = std::getenv("TMPDIR");
    work_dir = fmt::format("{}/gqa-evolve-rank{}-{}", tmp && *tmp ? tmp : "/tmp", rank, getpid());
    fs::create_directories(work_dir);
    evaluate = make_evaluator(cfg, target, work_dir, 0, device);
    ready["device"] = device;
  } catch (const std::exception& e) {
    ready["error"] = e.what();
  }
  send_msg(0, kReady, ready);

  const std::string where = fmt::format("rank {} on {}{}", rank, host, device.empty() ? "" : ", GPU " + device);
  for (;;) {
    const Msg m = recv_msg(0, MPI_ANY_TAG);
    if (m.tag == kStop) break;
    if (m.tag != kJob) continue;
    nlohmann::json out = {{"worker", where}};
    try {
      if (!evaluate) fail("evolve", "{} could not be set up", where);
      out["eval"] = evaluate(m.body.at("code").get<std::string>(), m.body.at("parent_code").get<std::string>(),
                             m.body.at("iteration").get<int64_t>());
    } catch (const std::exception& e) {
      out["error"] = e.what();
    }
    send_msg(0, kResult, out);
  }
  std::error_code ec;
  if (!work_dir.empty()) fs::remove_all(work_dir, ec);
}

// Rank 0: sets the workers up, then runs the ordinary loop with one evaluation thread per worker rank.
RunSummary controller_main(int size, const std::string& config_path, RunOptions opt) {
  struct StopWorkers {  // on every exit path, errors included: no worker is left waiting
    int size;
    ~StopWorkers() {
      for (int r = 1; r < size; ++r) {
        try {
          send_msg(r, kStop, nlohmann::json::object());
        } catch (const std::exception& e) {
          std::fprintf(stderr, "gqa-evolve: could not stop rank %d: %s\n", r, e.what());
        }
      }
    }
  } stop{size};
  if (size < 2)
    fail("evolve", "--workers mpi needs at least 2 ranks (rank 0 runs the search, the others evaluate): "
         "start it with mpirun -n K, K >= 2");
  const std::string text = read_file(config_path, "config");
  const EvolveConfig cfg = parse_config(text, config_path);
  const std::string target(target_name(opt.target.value_or(cfg.target)));
  for (int r = 1; r < size; ++r) send_msg(r, kSetup, {{"config_text", text}, {"config_name", config_path}, {"target", target}});
  std::string placement;
  for (int r = 1; r < size; ++r) {
    const Msg m = recv_msg(r, kReady);
    const std::string host = m.body.value("host", std::string("?")), device = m.body.value("device", std::string());
    if (m.body.contains("error"))
      fail("evolve", "worker rank {} on {}: {}", r, host, m.body["error"].get<std::string>());
    placement += fmt::format("{}rank {} on {}{}", placement.empty() ? "" : "; ", r, host, device.empty() ? "" : " (GPU " + device + ")");
  }
  opt.workers = size - 1;
  opt.notes.push_back(fmt::format("MPI: rank 0 on {} controls; {} evaluator rank(s): {}", processor_name(), size - 1, placement));

  // Worker thread w of the run loop drives rank w + 1; the initial program (main thread) goes to rank 1.
  EvaluateFn remote = [](const std::string& code, const std::string& parent, int64_t iteration) {
    const int r = std::max(current_worker(), 0) + 1;
    send_msg(r, kJob, {{"code", code}, {"parent_code", parent}, {"iteration", iteration}});
    const Msg m = recv_msg(r, kResult);
    if (m.body.contains("error"))
      fail("evolve", "{}: {}", m.body.value("worker", fmt::format("rank {}", r)), m.body["error"].get<std::string>());
    nlohmann::json e = m.body.at("eval");
    e["worker"] = m.body.value("worker", std::string());
    return e;
  };
  return run_evolution(cfg, opt, remote);
}

}  // namespace

bool mpi_built() { return true; }

std::optional<RunSummary> run_evolution_mpi(const std::string& config_path, RunOptions options) {
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  struct Finalize {
    ~Finalize() { MPI_Finalize(); }
  } finalize;
  if (provided < MPI_THREAD_SERIALIZED)
    fail("mpi", "this MPI library gives thread level {} but gqa-evolve needs MPI_THREAD_SERIALIZED", provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int local_index = local_worker_index(rank);
  if (rank != 0) {
    try {
      worker_main(rank, local_index);
    } catch (const std::exception& e) {  // rank 0 would wait for this rank forever: end the job, as MPI jobs end
      std::fprintf(stderr, "gqa-evolve: rank %d: %s\n", rank, e.what());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return std::nullopt;
  }
  return controller_main(size, config_path, std::move(options));
}

}  // namespace gqa::evolve
