//! The preview1 ABI vocabulary: errno values, flags, rights, file types and the
//! byte layouts of the structures passed through guest memory (wasm32, little-endian).

/// A preview1 error number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub u16);

#[allow(missing_docs)]
impl Errno {
    pub const SUCCESS: Errno = Errno(0);
    pub const TOOBIG: Errno = Errno(1);
    pub const ACCES: Errno = Errno(2);
    pub const AGAIN: Errno = Errno(6);
    pub const BADF: Errno = Errno(8);
    pub const BUSY: Errno = Errno(10);
    pub const EXIST: Errno = Errno(20);
    pub const FAULT: Errno = Errno(21);
    pub const FBIG: Errno = Errno(22);
    pub const INTR: Errno = Errno(27);
    pub const INVAL: Errno = Errno(28);
    pub const IO: Errno = Errno(29);
    pub const ISDIR: Errno = Errno(31);
    pub const LOOP: Errno = Errno(32);
    pub const MFILE: Errno = Errno(33);
    pub const MLINK: Errno = Errno(34);
    pub const NAMETOOLONG: Errno = Errno(37);
    pub const NOENT: Errno = Errno(44);
    pub const NOMEM: Errno = Errno(48);
    pub const NOSPC: Errno = Errno(51);
    pub const NOSYS: Errno = Errno(52);
    pub const NOTDIR: Errno = Errno(54);
    pub const NOTEMPTY: Errno = Errno(55);
    pub const NOTSOCK: Errno = Errno(57);
    pub const NOTSUP: Errno = Errno(58);
    pub const OVERFLOW: Errno = Errno(61);
    pub const PERM: Errno = Errno(63);
    pub const PIPE: Errno = Errno(64);
    pub const ROFS: Errno = Errno(69);
    pub const SPIPE: Errno = Errno(70);
    pub const TXTBSY: Errno = Errno(74);
    pub const XDEV: Errno = Errno(75);
    pub const NOTCAPABLE: Errno = Errno(76);
    /// Not an errno: a value outside an enum or flags type, which makes the call
    /// trap (as Wasmtime's does) instead of answering.
    pub const INVALID_VALUE: Errno = Errno(u16::MAX);
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Errno {
        if let Some(code) = e.raw_os_error() {
            return Errno::from(rustix::io::Errno::from_raw_os_error(code));
        }
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => Errno::NOENT,
            // cap-std reports attempts to leave a preopened directory this way.
            K::PermissionDenied => Errno::PERM,
            K::AlreadyExists => Errno::EXIST,
            K::InvalidInput | K::InvalidData => Errno::INVAL,
            K::WouldBlock => Errno::AGAIN,
            K::BrokenPipe => Errno::PIPE,
            K::Unsupported => Errno::NOTSUP,
            K::OutOfMemory => Errno::NOMEM,
            K::Interrupted => Errno::INTR,
            K::NotADirectory => Errno::NOTDIR,
            K::IsADirectory => Errno::ISDIR,
            K::DirectoryNotEmpty => Errno::NOTEMPTY,
            K::ReadOnlyFilesystem => Errno::ROFS,
            K::CrossesDevices => Errno::XDEV,
            K::InvalidFilename => Errno::NAMETOOLONG,
            K::FileTooLarge => Errno::FBIG,
            K::StorageFull => Errno::NOSPC,
            _ => Errno::IO,
        }
    }
}

impl From<rustix::io::Errno> for Errno {
    fn from(e: rustix::io::Errno) -> Errno {
        use rustix::io::Errno as E;
        match e {
            E::TOOBIG => Errno::TOOBIG,
            E::ACCESS => Errno::ACCES,
            E::AGAIN => Errno::AGAIN,
            E::BADF => Errno::BADF,
            E::BUSY => Errno::BUSY,
            E::EXIST => Errno::EXIST,
            E::FAULT => Errno::FAULT,
            E::FBIG => Errno::FBIG,
            E::INTR => Errno::INTR,
            E::INVAL => Errno::INVAL,
            E::IO => Errno::IO,
            E::ISDIR => Errno::ISDIR,
            E::LOOP => Errno::LOOP,
            E::MFILE => Errno::MFILE,
            E::MLINK => Errno::MLINK,
            E::NAMETOOLONG => Errno::NAMETOOLONG,
            E::NOENT => Errno::NOENT,
            E::NOMEM => Errno::NOMEM,
            E::NOSPC => Errno::NOSPC,
            E::NOSYS => Errno::NOSYS,
            E::NOTDIR => Errno::NOTDIR,
            E::NOTEMPTY => Errno::NOTEMPTY,
            E::NOTSOCK => Errno::NOTSOCK,
            E::NOTSUP => Errno::NOTSUP,
            E::OVERFLOW => Errno::OVERFLOW,
            E::PERM => Errno::PERM,
            E::PIPE => Errno::PIPE,
            E::ROFS => Errno::ROFS,
            E::SPIPE => Errno::SPIPE,
            E::TXTBSY => Errno::TXTBSY,
            E::XDEV => Errno::XDEV,
            _ => Errno::IO,
        }
    }
}

pub const FILETYPE_UNKNOWN: u8 = 0;
pub const FILETYPE_BLOCK_DEVICE: u8 = 1;
pub const FILETYPE_CHARACTER_DEVICE: u8 = 2;
pub const FILETYPE_DIRECTORY: u8 = 3;
pub const FILETYPE_REGULAR_FILE: u8 = 4;
pub const FILETYPE_SOCKET_STREAM: u8 = 6;

pub const RIFLAGS_RECV_PEEK: u16 = 1;
pub const RIFLAGS_RECV_WAITALL: u16 = 2;
pub const SDFLAGS_RD: u8 = 1;
pub const SDFLAGS_WR: u8 = 2;
pub const FILETYPE_SYMBOLIC_LINK: u8 = 7;

pub const FDFLAGS_APPEND: u16 = 1;
pub const FDFLAGS_DSYNC: u16 = 2;
pub const FDFLAGS_NONBLOCK: u16 = 4;
pub const FDFLAGS_RSYNC: u16 = 8;
pub const FDFLAGS_SYNC: u16 = 16;

pub const OFLAGS_CREAT: u16 = 1;
pub const OFLAGS_DIRECTORY: u16 = 2;
pub const OFLAGS_EXCL: u16 = 4;
pub const OFLAGS_TRUNC: u16 = 8;

pub const LOOKUP_SYMLINK_FOLLOW: u32 = 1;

pub const FSTFLAGS_ATIM: u16 = 1;
pub const FSTFLAGS_ATIM_NOW: u16 = 2;
pub const FSTFLAGS_MTIM: u16 = 4;
pub const FSTFLAGS_MTIM_NOW: u16 = 8;

pub const WHENCE_SET: u8 = 0;
pub const WHENCE_CUR: u8 = 1;
pub const WHENCE_END: u8 = 2;

pub const CLOCK_REALTIME: u32 = 0;
pub const CLOCK_MONOTONIC: u32 = 1;
pub const CLOCK_PROCESS_CPUTIME: u32 = 2;
pub const CLOCK_THREAD_CPUTIME: u32 = 3;

pub const EVENTTYPE_CLOCK: u8 = 0;
pub const EVENTTYPE_FD_READ: u8 = 1;
pub const EVENTTYPE_FD_WRITE: u8 = 2;
pub const SUBCLOCKFLAGS_ABSTIME: u16 = 1;

/// Rights (a bit set over the operations a descriptor allows). Carnac reports
/// them in `fd_fdstat_get` and does not enforce them, as Wasmtime.
pub mod rights {
    pub const FD_DATASYNC: u64 = 1 << 0;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    pub const FD_SYNC: u64 = 1 << 4;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_ADVISE: u64 = 1 << 7;
    pub const FD_ALLOCATE: u64 = 1 << 8;
    pub const PATH_CREATE_DIRECTORY: u64 = 1 << 9;
    pub const PATH_CREATE_FILE: u64 = 1 << 10;
    pub const PATH_LINK_SOURCE: u64 = 1 << 11;
    pub const PATH_LINK_TARGET: u64 = 1 << 12;
    pub const PATH_OPEN: u64 = 1 << 13;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const PATH_READLINK: u64 = 1 << 15;
    pub const PATH_RENAME_SOURCE: u64 = 1 << 16;
    pub const PATH_RENAME_TARGET: u64 = 1 << 17;
    pub const PATH_FILESTAT_GET: u64 = 1 << 18;
    pub const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
    pub const PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    pub const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
    pub const PATH_SYMLINK: u64 = 1 << 24;
    pub const PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
    pub const PATH_UNLINK_FILE: u64 = 1 << 26;
    pub const POLL_FD_READWRITE: u64 = 1 << 27;
    pub const SOCK_SHUTDOWN: u64 = 1 << 28;
    pub const SOCK_ACCEPT: u64 = 1 << 29;

    /// A listening socket.
    pub const SOCK_LISTENER: u64 = SOCK_ACCEPT | POLL_FD_READWRITE | FD_FDSTAT_SET_FLAGS | FD_FILESTAT_GET;

    /// A connected stream socket.
    pub const SOCK_STREAM: u64 =
        FD_READ | FD_WRITE | SOCK_SHUTDOWN | POLL_FD_READWRITE | FD_FDSTAT_SET_FLAGS | FD_FILESTAT_GET;
}
