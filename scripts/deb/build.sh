#!/usr/bin/env bash
# Builds .build-deb/lockmgr_VERSION_ARCH.deb from the release build, with
# dpkg-deb (no debhelper: one binary package, every file placed by
# scripts/install-files.sh exactly as `make install PREFIX=/usr` does).
#   scripts/deb/build.sh VERSION
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$1
arch=$(dpkg --print-architecture)
bin=$(swift build -c release --show-bin-path)
out=.build-deb
stage=$out/stage
rm -rf "$stage" "$out/shlibdeps"
mkdir -p "$stage/DEBIAN"

scripts/install-files.sh "$bin" /usr "$stage" >/dev/null
# The system's libraries only: SwiftPM links every product with RUNPATH $ORIGIN.
# Symbols go too (the .dynsym tables dlopen and the plugin ABI need stay).
for f in "$stage"/usr/bin/* "$stage"/usr/libexec/lockmgr/* "$stage"/usr/lib/*/libvirt/lock-driver/*.so; do
    chrpath -d "$f" >/dev/null
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$f"
done

doc=$stage/usr/share/doc/lockmgr
install -d "$doc" "$stage/usr/share/man/man5" "$stage/usr/share/man/man8"
install -m 0644 README.md "$doc/README.md" && gzip -9n "$doc/README.md"
install -m 0644 scripts/deb/copyright "$doc/copyright"
printf 'lockmgr (%s) unstable; urgency=medium\n\n  * Package built from %s.\n\n -- lockmgr developers <lockmgr@example.org>  %s\n' \
    "$version" "$(git describe --always --dirty 2>/dev/null || echo 'a source tree')" \
    "$(date -R -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")" > "$doc/changelog"
gzip -9n "$doc/changelog"
scripts/deb/man.sh "$out/man" >/dev/null
for page in "$out"/man/*.[58]; do
    section=${page##*.}
    install -m 0644 "$page" "$stage/usr/share/man/man$section/" && gzip -9n "$stage/usr/share/man/man$section/$(basename "$page")"
done
install -d "$stage/usr/share/lintian/overrides"
install -m 0644 scripts/deb/lintian-overrides "$stage/usr/share/lintian/overrides/lockmgr"

# Depends: from the libraries the files link (dpkg-shlibdeps reads the
# shlibs/symbols files of the installed -dev packages' libraries).
mkdir -p "$out/shlibdeps/debian"
printf 'Source: lockmgr\n\nPackage: lockmgr\nArchitecture: any\n' > "$out/shlibdeps/debian/control"
elves=$(find "$PWD/$stage/usr" -type f \( -perm -u+x -o -name '*.so' \))
depends=$(cd "$out/shlibdeps" && dpkg-shlibdeps -O $elves | sed -n 's/^shlibs:Depends=//p')
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)

sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
    scripts/deb/control > "$stage/DEBIAN/control"
(cd "$stage" && find etc -type f | sed 's|^|/|') > "$stage/DEBIAN/conffiles"
(cd "$stage" && find usr lib -type f -print0 | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/"*
find "$stage" -type d -exec chmod 0755 {} +

deb=$out/lockmgr_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
dpkg-deb --info "$deb" | sed -n 's/^ \(Depends\|Installed-Size\|Version\):/  \1:/p'
