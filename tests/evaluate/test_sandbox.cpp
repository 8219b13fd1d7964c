// The CUDA target's seccomp filter (enter_cuda_sandbox), rule by rule, each in a forked process: what it must
// refuse dies of SIGSYS (or fails with EACCES, for opening files), what the CUDA driver needs keeps working.
// No GPU needed: the filter is the kernel's, not the driver's. (The CPU target's allow-list is exercised by the
// cheat programs of test_adversarial / test_cheats.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <functional>
#include <signal.h>
#include <string>
#include <thread>

#include "evaluate/sandbox.h"

namespace gqa {
namespace {

// Runs `body` in a child that has entered the CUDA sandbox; its wait status. The child exits 0 when body returns
// true, 1 when it returns false (stderr says why), or dies of the signal that ended it.
int in_cuda_sandbox(const std::function<bool()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    eval::enter_cuda_sandbox();
    _exit(body() ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}
bool exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
bool killed_by_sigsys(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS; }

TEST(CudaSandbox, OpeningOrCreatingAFileFailsWithEacces) {
  const std::string path = testing::TempDir() + "/cuda_sandbox_created";
  std::filesystem::remove(path);
  EXPECT_TRUE(exited_ok(in_cuda_sandbox([&] {
    const int fd = open(path.c_str(), O_CREAT | O_WRONLY, 0644);
    const int fd2 = openat(AT_FDCWD, "/etc/hostname", O_RDONLY);
    return fd == -1 && fd2 == -1 && errno == EACCES;
  })));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(CudaSandbox, WhatTheDriverNeedsKeepsWorking) {
  // Threads (the driver starts its own; glibc tries clone3, gets ENOSYS and uses clone with CLONE_THREAD), memory
  // mappings without PROT_EXEC, stderr, signals to itself, reading a resource limit.
  EXPECT_TRUE(exited_ok(in_cuda_sandbox([] {
    int x = 0;
    std::thread t([&] { x = 1; });
    t.join();
    void* m = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m, 4096, PROT_READ) != 0) return false;
    rlimit rl{};
    const bool limit = getrlimit(RLIMIT_NOFILE, &rl) == 0;
    return x == 1 && write(2, "", 0) == 0 && kill(getpid(), 0) == 0 && limit;
  })));
}

TEST(CudaSandbox, NewProcessesAreKilled) {
  EXPECT_TRUE(killed_by_sigsys(in_cuda_sandbox([] { return fork() < 0; })));
  EXPECT_TRUE(killed_by_sigsys(in_cuda_sandbox([] {
    char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
    return syscall(SYS_execve, "/bin/true", argv, nullptr) < 0;
  })));
}

TEST(CudaSandbox, SocketsAreKilled) {
  EXPECT_TRUE(killed_by_sigsys(in_cuda_sandbox([] { return socket(AF_INET, SOCK_STREAM, 0) < 0; })));
}

TEST(CudaSandbox, ExecutableMemoryIsKilled) {
  EXPECT_TRUE(killed_by_sigsys(in_cuda_sandbox([] {
    return mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED;
  })));
  EXPECT_TRUE(killed_by_sigsys(in_cuda_sandbox([] {
    void* m = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return mprotect(m, 4096, PROT_READ | PROT_EXEC) != 0;
  })));
}

TEST(CudaSandbox, WritesToStdoutAndSignalsToOthersAreKilled) {
  EXPECT_TRUE(killed_by_sigsys(in_cuda_sandbox([] { return write(1, "x\n", 2) < 0; })));
  EXPECT_TRUE(killed_by_sigsys(in_cuda_sandbox([] { return kill(getppid(), 0) != 0; })));
}

TEST(CudaSandbox, FilesByNameAndResourceLimitsAreKilled) {
  EXPECT_TRUE(killed_by_sigsys(in_cuda_sandbox([] { return unlink("/tmp/nothing-here") != 0; })));
  EXPECT_TRUE(killed_by_sigsys(in_cuda_sandbox([] {
    rlimit rl{1 << 20, 1 << 20};
    return setrlimit(RLIMIT_AS, &rl) != 0;
  })));
}

}  // namespace
}  // namespace gqa
