# shellcheck shell=bash
# Sourced by the VM harness (fetch-kernel.sh, build-root.sh, build-mdma.sh,
# run-vm.sh, ../vm-systemd/run-vm-systemd.sh): which Debian release's kernel
# the guest boots, how apt reaches that release, and the layout of an
# extracted kernel package.
#
# VFIOD_GUEST_KERNEL names the release by its code name: bookworm (Debian 12,
# kernel 6.1; the default) or trixie (Debian 13, kernel 6.12). The kernel is
# the package that release's linux-image-amd64 depends on today.
#
# The machine's own release (VERSION_CODENAME in /etc/os-release) comes
# through the machine's apt, as any package does. Another release comes
# through a private apt configuration in $VFIOD_CACHE_DIR/<release>/apt: its
# sources.list names the Debian mirrors the machine's apt uses for its own
# release (apt-get indextargets), with the other release's name in place of
# the machine's (bookworm-security -> trixie-security); the machine's sources,
# lists and preferences are neither read nor changed. Everything fetched for
# a release is cached in $VFIOD_CACHE_DIR/<release>/.

# shellcheck disable=SC2034 # kl_* variables are for the scripts that source this
kl_cache=${VFIOD_CACHE_DIR:-/var/cache/vfiod-test}
kl_series=${VFIOD_GUEST_KERNEL:-bookworm}
kl_series_dir=$kl_cache/$kl_series
kl_private=0
kl_apt_opts=()

# The machine's release: a private apt configuration is needed for any other.
kl_host_series() {
        (
                # shellcheck disable=SC1091
                . /etc/os-release 2>/dev/null || true
                printf '%s\n' "${VERSION_CODENAME:-}"
        )
}

# Checks VFIOD_GUEST_KERNEL and sets kl_private and kl_apt_opts.
kl_init() {
        if ! [[ $kl_series =~ ^[a-z]+$ ]]; then
                printf "VFIOD_GUEST_KERNEL '%s' is not a Debian release's code name (bookworm, trixie)\n" \
                        "$kl_series" >&2
                return 1
        fi
        kl_private=0
        kl_apt_opts=()
        [ "$kl_series" = "$(kl_host_series)" ] && return 0
        # shellcheck disable=SC2034 # for the scripts that source this
        kl_private=1
        local a=$kl_series_dir/apt
        kl_apt_opts=(-o "Dir::Etc::SourceList=$a/sources.list" -o "Dir::Etc::SourceParts=$a/sources.list.d"
                -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$a/preferences.d"
                -o "Dir::State=$a/state" -o "Dir::State::status=$a/status" -o "Dir::Cache=$a/cache")
}

kl_apt_get() { apt-get "${kl_apt_opts[@]}" "$@"; }
kl_apt_cache() { apt-cache "${kl_apt_opts[@]}" "$@"; }

# The private sources.list: each Debian mirror the machine's apt uses for its
# own release, its -updates and its -security, for $kl_series instead.
kl_private_sources() {
        local host keyring='' uri rel suffix
        host=$(kl_host_series)
        [ -n "$host" ] || return 0
        [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
                keyring='[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] '
        # shellcheck disable=SC2016 # apt's own $(FIELD) syntax
        apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 'Origin: Debian' \
                2>/dev/null | sort -u | while read -r uri rel; do
                case $rel in
                "$host" | "$host"-updates | "$host"-security) suffix=${rel#"$host"} ;;
                *) continue ;;
                esac
                printf 'deb %s%s %s%s main\n' "$keyring" "$uri" "$kl_series" "$suffix"
        done
}

# The mirror of the release itself (for debootstrap).
kl_mirror() {
        sed -n "s/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) $kl_series main\$/\2/p" \
                "$kl_series_dir/apt/sources.list" 2>/dev/null | head -n 1
}

# Writes the private configuration (afresh: the machine's mirrors may have
# changed) and runs apt-get update in it. Messages go to stderr.
kl_private_update() {
        local a=$kl_series_dir/apt
        mkdir -p "$a/sources.list.d" "$a/preferences.d" "$a/state/lists/partial" \
                "$a/cache/archives/partial" || return 1
        : >>"$a/status"
        kl_private_sources >"$a/sources.list.tmp"
        if [ ! -s "$a/sources.list.tmp" ]; then
                printf "no Debian mirror for '%s' in the machine's apt sources (apt-get indextargets)\n" \
                        "$(kl_host_series)" >&2
                return 1
        fi
        mv "$a/sources.list.tmp" "$a/sources.list"
        kl_apt_get -qq update >&2 || return 1
        touch "$a/updated"
}

# True when the private package lists are missing or older than a day.
kl_private_stale() {
        local stamp=$kl_series_dir/apt/updated
        [ -f "$stamp" ] || return 0
        [ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]
}

# kl_locate DIR: of the kernel package extracted in DIR, sets kl_vmlinuz,
# kl_release (uname -r) and kl_moddir. Debian 12's package has its modules
# in lib/modules, Debian 13's (merged /usr) in usr/lib/modules.
kl_locate() {
        local d
        kl_vmlinuz=$(compgen -G "$1/boot/vmlinuz-*" | head -n 1) || {
                printf "no boot/vmlinuz-* in '%s'\n" "$1" >&2
                return 1
        }
        kl_release=${kl_vmlinuz##*/vmlinuz-}
        for d in "$1/lib/modules/$kl_release" "$1/usr/lib/modules/$kl_release"; do
                if [ -d "$d/kernel" ]; then
                        # shellcheck disable=SC2034 # for the scripts that source this
                        kl_moddir=$d
                        return 0
                fi
        done
        printf "no modules of %s in '%s' (lib/modules or usr/lib/modules)\n" "$kl_release" "$1" >&2
        return 1
}

# kl_modules MODDIR DEST NAME...: each NAME with the modules it depends on
# (the depends= of their .modinfo, as modprobe reads them from modules.dep),
# each once, decompressed into DEST (busybox insmod may lack xz/zstd). Prints
# their file names in an order insmod accepts, dependencies first. A module
# built into the kernel (modules.builtin) is left out: since 6.2, for
# example, vfio_virqfd is part of vfio.ko. '-' and '_' are the same in names.
kl_modules() {
        local moddir=$1 dest=$2 f n
        shift 2
        declare -A kl_files=() kl_builtin=() kl_state=()
        while IFS= read -r f; do
                n=${f##*/}
                n=${n%%.ko*}
                kl_files[${n//-/_}]=$f
        done < <(find "$moddir/kernel" -name '*.ko' -o -name '*.ko.[gxz]*')
        if [ -f "$moddir/modules.builtin" ]; then
                while IFS= read -r f; do
                        n=${f##*/}
                        n=${n%.ko}
                        kl_builtin[${n//-/_}]=1
                done <"$moddir/modules.builtin"
        fi
        for n in "$@"; do
                kl_module_add "$n" || return 1
        done
}

# One module for kl_modules (its variables are in scope): its dependencies,
# then itself.
kl_module_add() {
        local name=$1 key ko file deps d
        [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || {
                printf "module name '%s' is not a plain name\n" "$name" >&2
                return 1
        }
        key=${name//-/_}
        case ${kl_state[$key]:-} in
        loaded) return 0 ;;
        busy)
                printf "module '%s' depends on itself\n" "$name" >&2
                return 1
                ;;
        esac
        ko=${kl_files[$key]:-}
        if [ -z "$ko" ]; then
                if [ -n "${kl_builtin[$key]:-}" ]; then
                        kl_state[$key]=loaded
                        return 0
                fi
                printf "module '%s' not found under '%s' (neither a file nor in modules.builtin)\n" \
                        "$name" "$moddir" >&2
                return 1
        fi
        kl_state[$key]=busy
        file=${ko##*/}
        file=${file%%.ko*}.ko
        case $ko in
        *.xz) xz -dc "$ko" >"$dest/$file" ;;
        *.zst) zstd -qdc "$ko" >"$dest/$file" ;;
        *.gz) gzip -dc "$ko" >"$dest/$file" ;;
        *) cp "$ko" "$dest/$file" ;;
        esac || {
                printf "cannot decompress '%s'\n" "$ko" >&2
                return 1
        }
        deps=$(tr '\0' '\n' <"$dest/$file" | sed -n 's/^depends=//p' | head -n 1)
        for d in ${deps//,/ }; do
                kl_module_add "$d" || return 1
        done
        kl_state[$key]=loaded
        printf '%s\n' "$file"
}
