#include "util/fs.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace embark::fs {
namespace {

std::string Errno(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(Errno("cannot write", path));
    }
    off += static_cast<size_t>(n);
  }
  return Status::OK();
}

}  // namespace

std::string ParentDir(const std::string& path) {
  auto p = std::filesystem::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Status::IOError(Errno("cannot open directory", dir));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Status::IOError(Errno("cannot fsync directory", dir));
  return Status::OK();
}

Status WriteFileDurable(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(Errno("cannot create", path));
  Status st = WriteAll(fd, data, path);
  if (st.ok() && ::fsync(fd) != 0) st = Status::IOError(Errno("cannot fsync", path));
  if (::close(fd) != 0 && st.ok()) st = Status::IOError(Errno("cannot close", path));
  return st;
}

Status WriteFileAtomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  Status st = WriteFileDurable(tmp, data);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    st = Status::IOError(Errno("cannot rename into", path));
    ::unlink(tmp.c_str());
    return st;
  }
  return FsyncDir(ParentDir(path));
}

Result<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(Errno("cannot open", path));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::IOError(Errno("cannot read", path));
      ::close(fd);
      return st;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status ReplaceDirAtomic(const std::string& staged, const std::string& dest) {
  namespace sfs = std::filesystem;
  std::error_code ec;
  if (!sfs::exists(dest, ec)) {
    if (::rename(staged.c_str(), dest.c_str()) != 0)
      return Status::IOError(Errno("cannot rename checkpoint into", dest));
    return FsyncDir(ParentDir(dest));
  }
  if (::syscall(SYS_renameat2, AT_FDCWD, staged.c_str(), AT_FDCWD, dest.c_str(), RENAME_EXCHANGE) != 0)
    return Status::IOError(Errno("cannot swap checkpoint into", dest));
  EMBARK_RETURN_IF_ERROR(FsyncDir(ParentDir(dest)));
  sfs::remove_all(staged, ec);  // `staged` now holds the previous checkpoint
  return Status::OK();
}

}  // namespace embark::fs
