//! Sample packages built with the `rpm` crate: the demo's small dependency chain, the
//! tricky packages the metadata tests compare with createrepo_c, and large generated
//! sets for benchmarks. Everything here builds real, installable `.rpm` files.

use std::path::{Path, PathBuf};

use rpm::{Dependency, FileOptions, PackageBuilder};

/// Errors building sample packages.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("building {name}: {source}")]
    Build {
        name: String,
        #[source]
        source: rpm::Error,
    },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A fixed build time, so sample packages are reproducible.
const BUILD_TIME: u32 = 1_763_856_000; // 2025-11-23

fn config() -> rpm::BuildConfig {
    rpm::BuildConfig::v4()
        .compression(rpm::CompressionType::Gzip)
        .source_date(BUILD_TIME)
}

fn write(pkg: rpm::Package, dir: &Path, name: &str) -> Result<PathBuf, SampleError> {
    let path = dir.join(format!("{name}.rpm"));
    pkg.write_file(&path).map_err(|source| SampleError::Build {
        name: name.to_string(),
        source,
    })?;
    Ok(path)
}

fn build(b: &mut PackageBuilder, name: &str) -> Result<rpm::Package, SampleError> {
    b.build().map_err(|source| SampleError::Build {
        name: name.to_string(),
        source,
    })
}

fn content(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

/// The demo chain: `demo-app` needs `demo-lib` (by version) and `demo-tools` (by a file
/// path), and recommends `demo-docs`. Returns the written files.
pub fn demo_packages(dir: &Path) -> Result<Vec<PathBuf>, SampleError> {
    std::fs::create_dir_all(dir).map_err(|source| SampleError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    let e = |source| SampleError::Build {
        name: "demo".into(),
        source,
    };

    let mut lib = PackageBuilder::new("demo-lib", "1.2.0", "MIT", "noarch", "Demo shared data");
    lib.using_config(config())
        .release("1")
        .description("Data files the demo application needs.")
        .provides(Dependency::eq("demo-lib-data", "1.2.0"))
        .with_file_contents(
            content("answer=42\n"),
            FileOptions::new("/usr/share/demo-lib/data.conf"),
        )
        .map_err(e)?;
    out.push(write(
        build(&mut lib, "demo-lib")?,
        dir,
        "demo-lib-1.2.0-1.noarch",
    )?);

    let mut tools = PackageBuilder::new(
        "demo-tools",
        "0.9.1",
        "MIT",
        "noarch",
        "Demo command-line tools",
    );
    tools
        .using_config(config())
        .release("3")
        .description("Tools used by the demo application.")
        .with_file_contents(
            content("#!/bin/sh\necho demo tool\n"),
            FileOptions::new("/usr/bin/demo-tool").mode(rpm::FileMode::regular(0o755)),
        )
        .map_err(e)?;
    out.push(write(
        build(&mut tools, "demo-tools")?,
        dir,
        "demo-tools-0.9.1-3.noarch",
    )?);

    let mut docs = PackageBuilder::new(
        "demo-docs",
        "1.0",
        "CC-BY-4.0",
        "noarch",
        "Demo documentation",
    );
    docs.using_config(config())
        .release("1")
        .description("Documentation for the demo.")
        .with_file_contents(
            content("Read me.\n"),
            FileOptions::new("/usr/share/doc/demo/README"),
        )
        .map_err(e)?;
    out.push(write(
        build(&mut docs, "demo-docs")?,
        dir,
        "demo-docs-1.0-1.noarch",
    )?);

    let mut app = PackageBuilder::new(
        "demo-app",
        "2.0.0",
        "MIT",
        "noarch",
        "Demo application for Cairn",
    );
    app.using_config(config())
        .epoch(1)
        .release("1")
        .description("A tiny application whose dependencies live in other packages.")
        .url("https://example.invalid/demo")
        .vendor("Cairn demo")
        .requires(Dependency::greater_eq("demo-lib", "1.0"))
        .requires(Dependency::any("/usr/bin/demo-tool"))
        .recommends(Dependency::any("demo-docs"))
        .add_changelog_entry(
            "Demo Packager <demo@example.invalid> - 2.0.0-1",
            "- First demo release",
            BUILD_TIME,
        )
        .with_file_contents(
            content("#!/bin/sh\nexec /usr/bin/demo-tool \"$@\"\n"),
            FileOptions::new("/usr/bin/demo-app").mode(rpm::FileMode::regular(0o755)),
        )
        .map_err(e)?;
    out.push(write(
        build(&mut app, "demo-app")?,
        dir,
        "demo-app-2.0.0-1.noarch",
    )?);
    Ok(out)
}

/// Packages that exercise createrepo_c's corner cases: escaping, epochs, rich and weak
/// dependencies, pre-requires, ghost files, file provides outside the primary subset,
/// self-provided and duplicate requires, `libc.so.6` versions, changelog limits and
/// shared changelog timestamps, a source package.
pub fn tricky_packages(dir: &Path) -> Result<Vec<PathBuf>, SampleError> {
    std::fs::create_dir_all(dir).map_err(|source| SampleError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let e = |source| SampleError::Build {
        name: "tricky".into(),
        source,
    };
    let mut out = Vec::new();

    let mut a = PackageBuilder::new(
        "tricky-escapes",
        "1.2.3",
        "MIT AND (GPL-2.0-or-later OR BSD)",
        "x86_64",
        "Tools for <xml> & \"quoted\" 'apos'",
    );
    a.using_config(config())
        .epoch(7)
        .release("4.fc40")
        .description("Line one with <tags> & ampersands.\nLine two: ümlaut, \"quotes\", 'apos'.\n  indented ]]> line.")
        .packager("Jane Doe <jane@example.com>")
        .url("https://example.com/demo?a=1&b=2")
        .vendor("Example & Sons")
        .group("Applications/System")
        .provides(Dependency::eq("tricky-virtual", "5.0"))
        .provides(Dependency::eq("selfprov", "0:1.0"))
        .provides(Dependency::any("libtricky.so.1()(64bit)"))
        .requires(Dependency::any("(pkgA or pkgB)"))
        .requires(Dependency::greater_eq("bash", "4.0"))
        .requires(Dependency::less("glibc", "3:2.40-1"))
        .requires(Dependency::eq("selfprov", "0:1.0"))
        .requires(Dependency::eq("selfprov", "1.0"))
        .requires(Dependency::any("libtricky.so.1()(64bit)"))
        .requires(Dependency::any("/usr/bin/tricky"))
        .requires(Dependency::any("/usr/share/tricky/data.txt"))
        .requires(Dependency::any("/bin/sh"))
        .requires(Dependency::script_pre("/bin/sh"))
        .requires(Dependency::script_post("/bin/sh"))
        .requires(Dependency::script_pre("shadow-utils"))
        .requires(Dependency::script_preun("coreutils"))
        .requires(Dependency::any("dup-req"))
        .requires(Dependency::any("dup-req"))
        .requires(Dependency::any("libc.so.6(GLIBC_2.4)(64bit)"))
        .requires(Dependency::any("libc.so.6(GLIBC_2.34)(64bit)"))
        .requires(Dependency::any("libc.so.6()(64bit)"))
        .requires(Dependency::any("zzz-after-libc"))
        .conflicts(Dependency::less("old-tricky", "1.0"))
        .obsoletes(Dependency::less_eq("tricky-legacy", "0.9"))
        .suggests(Dependency::greater("tricky-extras", "1"))
        .enhances(Dependency::any("tricky-host"))
        .recommends(Dependency::any("tricky-docs"))
        .supplements(Dependency::any("(tricky-base and langpacks-en)"))
        .with_dir_entry(FileOptions::dir("/etc/tricky"))
        .map_err(e)?
        .with_file_contents(content("x=1\n"), FileOptions::new("/etc/tricky/tricky.conf").config())
        .map_err(e)?
        .with_file_contents(content("bin\n"), FileOptions::new("/usr/bin/tricky").mode(rpm::FileMode::regular(0o755)))
        .map_err(e)?
        .with_file_contents(content("opt\n"), FileOptions::new("/opt/tricky/bin/tool"))
        .map_err(e)?
        .with_file_contents(content("robin\n"), FileOptions::new("/usr/share/robin/z"))
        .map_err(e)?
        .with_file_contents(content("data\n"), FileOptions::new("/usr/share/tricky/data.txt"))
        .map_err(e)?
        .with_file_contents(content("mail\n"), FileOptions::new("/usr/lib/sendmail"))
        .map_err(e)?
        .with_ghost(FileOptions::ghost("/var/log/tricky.log"))
        .map_err(e)?
        .with_ghost(FileOptions::ghost("/etc/tricky/ghost.state"))
        .map_err(e)?
        .with_symlink(FileOptions::symlink("/usr/bin/tricky-link", "/usr/bin/tricky"))
        .map_err(e)?;
    // Twelve changelog entries (more than the limit), two pairs sharing a timestamp.
    for i in 0..12u32 {
        let t = BUILD_TIME - 86_400 * (i / 2 * 2);
        a.add_changelog_entry(
            format!("Packager {i} <p{i}@example.com> - 1.2.3-{i}  "),
            format!("- change {i} with <markup> & stuff"),
            t,
        );
    }
    out.push(write(
        build(&mut a, "tricky-escapes")?,
        dir,
        "tricky-escapes-1.2.3-4.fc40.x86_64",
    )?);

    let mut b = PackageBuilder::new("tricky-minimal", "0", "Public Domain", "noarch", "");
    b.using_config(config()).release("0");
    out.push(write(
        build(&mut b, "tricky-minimal")?,
        dir,
        "tricky-minimal-0-0.noarch",
    )?);

    let mut c = PackageBuilder::new(
        "tricky-deps",
        "10.0~rc1^git1",
        "MIT",
        "noarch",
        "Odd versions",
    );
    c.using_config(config())
        .epoch(2)
        .release("1.el9")
        .requires(Dependency::greater_eq("weird", "x:1.0"))
        .requires(Dependency::eq("evr-full", "3:1.0-2.el9"))
        .requires(Dependency::less_eq("evr-no-rel", "1.0"))
        .provides(Dependency::eq(
            "tricky-deps-compat",
            "2:10.0~rc1^git1-1.el9",
        ))
        .with_file_contents(content("x\n"), FileOptions::new("/usr/sbin/trickyd"))
        .map_err(e)?;
    out.push(write(
        build(&mut c, "tricky-deps")?,
        dir,
        "tricky-deps-10.0~rc1^git1-1.el9.noarch",
    )?);
    Ok(out)
}

/// Generates `n` small valid packages named `gen-NNNNN` into `dir` (for benchmarks).
pub fn generate(dir: &Path, n: usize) -> Result<Vec<PathBuf>, SampleError> {
    generate_rich(dir, n, 1, 0)
}

/// [`generate`] with `files` files and `changelogs` changelog entries per package (a
/// few hundred bytes each), so the metadata weighs what a distribution's does.
pub fn generate_rich(
    dir: &Path,
    n: usize,
    files: usize,
    changelogs: usize,
) -> Result<Vec<PathBuf>, SampleError> {
    std::fs::create_dir_all(dir).map_err(|source| SampleError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("gen-{i:05}");
        let mut b = PackageBuilder::new(&name, "1.0", "MIT", "noarch", "Generated package");
        b.using_config(config())
            .release("1")
            .description("A generated package for benchmarks.")
            .requires(Dependency::any(format!("gen-{:05}", (i + 1) % n.max(1))))
            .with_file_contents(
                format!("file {i}\n").into_bytes(),
                FileOptions::new(format!("/usr/share/gen/{name}.txt")),
            )
            .map_err(|source| SampleError::Build {
                name: name.clone(),
                source,
            })?;
        for f in 1..files {
            b.with_file_contents(
                Vec::new(),
                FileOptions::new(format!(
                    "/usr/share/gen/{name}/lib/python3/site-packages/{name}/module_{f:03}.py"
                )),
            )
            .map_err(|source| SampleError::Build {
                name: name.clone(),
                source,
            })?;
        }
        for c in 0..changelogs {
            b.add_changelog_entry(
                format!("Generated Packager <gen{c}@example.invalid> - 1.0-{c}"),
                format!(
                    "- Rebuilt for the mass rebuild number {c} of {name}, with a longer line\n\
                     - Fixed issue {c} in the generated module, and updated the packaging\n\
                     - Resolves: bz#{c}{i} (a reference to a bug tracker, as real entries have)"
                ),
                BUILD_TIME.saturating_sub(c as u32 * 86_400),
            );
        }
        out.push(write(
            build(&mut b, &name)?,
            dir,
            &format!("{name}-1.0-1.noarch"),
        )?);
    }
    Ok(out)
}

/// Writes one package `name-1.0-1.noarch.rpm` carrying `bytes` of incompressible
/// payload (stored uncompressed), for large-file serving tests and benchmarks.
pub fn large_package(dir: &Path, name: &str, bytes: usize) -> Result<PathBuf, SampleError> {
    std::fs::create_dir_all(dir).map_err(|source| SampleError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut data = vec![0u8; bytes];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut b = PackageBuilder::new(name, "1.0", "MIT", "noarch", "A large package");
    b.using_config(
        rpm::BuildConfig::v4()
            .compression(rpm::CompressionType::None)
            .source_date(BUILD_TIME),
    )
    .release("1")
    .with_file_contents(
        data,
        FileOptions::new(format!("/usr/share/{name}/blob.bin")),
    )
    .map_err(|source| SampleError::Build {
        name: name.to_string(),
        source,
    })?;
    write(build(&mut b, name)?, dir, &format!("{name}-1.0-1.noarch"))
}
