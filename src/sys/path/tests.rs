//! The tests of `sys::path`: links, trust, removal and sockets, on
//! scratch directories under the system's temporary directory.

use super::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("preforkd-path-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_link_at_the_name_is_not_followed() {
    let dir = scratch("link");
    let target = dir.join("target");
    std::fs::write(&target, "keep\n").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("name")).unwrap();
    let p = Parent::open(&dir.join("name")).unwrap();
    let err = p
        .open_file(OFlag::O_RDWR | OFlag::O_CREAT, 0o644)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    assert_eq!(p.entry().unwrap().unwrap().kind, Kind::Symlink);
    let id = entry_of(std::os::fd::AsFd::as_fd(
        &std::fs::File::open(&target).unwrap(),
    ))
    .unwrap()
    .id;
    // The link is not the file, even if it points to it.
    assert!(matches!(p.remove_if(id).unwrap(), Removal::Replaced(_)));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_directory_writable_by_others_is_refused_unless_sticky() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("trust");
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let why = Parent::open(&open.join("x"))
        .unwrap()
        .check_trusted()
        .unwrap_err();
    assert!(why.contains("writable by others (mode 0777)"), "{why}");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    Parent::open(&open.join("x"))
        .unwrap()
        .check_trusted()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn refusal(path: &Path) -> String {
    match Parent::open(path) {
        Err(OpenError::Unsafe(why)) => why,
        other => panic!("{}: not refused: {other:?}", path.display()),
    }
}

#[test]
fn a_link_is_followed_only_if_only_root_could_have_made_it() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let dir = scratch("links");
    std::fs::create_dir(dir.join("real")).unwrap();
    // Root's links in root's directory, as /var/run -> /run.
    symlink("real", dir.join("relative")).unwrap();
    symlink(dir.join("real"), dir.join("absolute")).unwrap();
    symlink("../links-up", dir.join("real/up")).unwrap();
    for via in [
        "relative",
        "absolute",
        "relative/../real",
        "real/../absolute",
    ] {
        let p = Parent::open(&dir.join(via).join("x")).unwrap();
        assert_eq!(p.dir_id().unwrap(), {
            let f = std::fs::File::open(dir.join("real")).unwrap();
            entry_of(std::os::fd::AsFd::as_fd(&f)).unwrap().id
        });
        p.check_trusted().unwrap();
    }
    // A link to nowhere is the system's error, not a refusal.
    assert!(matches!(
        Parent::open(&dir.join("real/up/x")),
        Err(OpenError::Io(_))
    ));
    // A link in a directory others may write: never followed.
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    symlink(dir.join("real"), open.join("l")).unwrap();
    let why = refusal(&open.join("l/x"));
    assert_eq!(
        why,
        format!(
            "{}/l is a symbolic link, and the directory {} is writable by others (mode 0777) \
             and has no sticky bit; not followed",
            open.display(),
            open.display()
        )
    );
    // Even further on.
    std::fs::create_dir(open.join("sub")).unwrap();
    symlink(dir.join("real"), open.join("sub/l")).unwrap();
    assert!(refusal(&open.join("sub/l/x")).contains("is writable by others"));
    // Another user's link in a sticky directory, as /tmp.
    if nix::unistd::geteuid().is_root() {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        nix::unistd::fchownat(
            None,
            &open.join("l"),
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        assert_eq!(
            refusal(&open.join("l/x")),
            format!(
                "{}/l is a symbolic link owned by uid 65534, neither root nor the daemon's user; not followed",
                open.display()
            )
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_directory_on_the_way_that_others_may_write_makes_the_way_untrusted() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("way");
    let open = dir.join("open");
    std::fs::create_dir_all(open.join("sub")).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    // The directory itself may be changed by others: the way is
    // trusted, the directory is not.
    let p = Parent::open(&open.join("x")).unwrap();
    p.check_way().unwrap();
    assert!(p.check_trusted().is_err());
    // A directory below it: neither.
    let p = Parent::open(&open.join("sub/x")).unwrap();
    let why = format!(
        "the directory {} is writable by others (mode 0777) and has no sticky bit",
        open.display()
    );
    assert_eq!(p.check_way(), Err(why.clone()));
    assert_eq!(p.check_trusted(), Err(why));
    // Relative to the working directory: the same walk.
    let p = Parent::open(Path::new("x")).unwrap();
    let f = std::fs::File::open(".").unwrap();
    assert_eq!(
        p.dir_id().unwrap(),
        entry_of(std::os::fd::AsFd::as_fd(&f)).unwrap().id
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_socket_is_born_with_its_mode() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = scratch("bind");
    let path = dir.join("s");
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
    let p = Parent::open(&path).unwrap();
    p.bind_socket(std::os::fd::AsFd::as_fd(&socket), Some(0o640))
        .unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    let id = p.entry().unwrap().unwrap().id;
    let Pinned::Socket(s) = p.pin_socket(id).unwrap() else {
        panic!("not pinned")
    };
    s.chmod(0o600).unwrap();
    let (uid, gid) = (meta.uid(), meta.gid());
    s.chown(uid, gid).unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(!p.socket_is_live(&s).unwrap());
    socket.listen(1).unwrap();
    assert!(p.socket_is_live(&s).unwrap());
    assert_eq!(p.remove_if(id).unwrap(), Removal::Removed);
    let _ = std::fs::remove_dir_all(&dir);
}
