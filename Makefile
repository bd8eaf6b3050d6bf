# aisched — developer entry points. Every target sets up .venv on its own the first time.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo run test lint typecheck unit crds deviceplugin-api validate bench venv clean image image-base image-test view-screenshot

demo: $(STAMP)  ## the scheduler on the embedded emulator (32 DGX H100 in 4 racks) with example jobs
	$(BIN)/aisched demo --cluster examples/clusters/dgx-h100-4racks.yaml --examples examples

run: $(STAMP)  ## the operator on the embedded emulator, until Ctrl-C (kubectl with ./aisched-emulator.kubeconfig)
	$(BIN)/aisched run --emulator --cluster examples/clusters/dgx-h100-4racks.yaml

view-screenshot: $(STAMP)  ## docs/view.png: the cluster view of the demo's cluster once its jobs are placed (needs Chromium)
	$(BIN)/aisched view-screenshot --cluster examples/clusters/dgx-h100-4racks.yaml --examples examples --output docs/view.png

test: lint typecheck unit  ## ruff, mypy --strict and every test

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[emulator,sim,otel,dev]'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict tests

unit: $(STAMP)
	$(BIN)/pytest

crds: $(STAMP)  ## regenerate crds/ from the API models
	$(BIN)/aisched crds --output-dir crds

DP_API := aisched/agent/deviceplugin/v1beta1/api.proto
deviceplugin-api: $(STAMP)  ## regenerate the kubelet device-plugin API modules from their .proto
	cd operator && ../$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. $(DP_API)

validate: $(STAMP)  ## validate the examples offline
	$(BIN)/aisched validate -f examples/

bench: $(STAMP)  ## benchmarks: JSON on stdout, a readable table on stderr
	$(BIN)/aisched bench core --nodes 5000 --json
	$(BIN)/aisched bench emulator --pods 3000 --json
	$(BIN)/aisched bench e2e --json
	$(BIN)/aisched bench sim --json
	$(BIN)/aisched bench fairness --json
	$(BIN)/aisched bench queue --json
	$(BIN)/aisched bench faults --json

# -- the container image (not part of `make test`: a few minutes, and root for buildah) --------
# No registry or Docker engine here: the base is a Debian root filesystem made by mmdebstrap from
# Debian's packages and imported into buildah's storage; the build runs with chroot isolation.
# Elsewhere: `docker build -t ghcr.io/aisched/aisched:0.1.0 .` (see Dockerfile).
IMAGE      ?= ghcr.io/aisched/aisched:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_BASE ?= localhost/aisched-base:bookworm
SUITE      ?= bookworm
export STORAGE_DRIVER ?= vfs
# The host's CA bundle, bound in while the build runs pip (never stored in the image), so a
# build behind a TLS-inspecting proxy trusts what the host trusts.
CA_BUNDLE  ?= /etc/ssl/certs/ca-certificates.crt
BUILD_CA   := $(if $(wildcard $(CA_BUNDLE)),--volume $(CA_BUNDLE):/etc/ssl/certs/ca-certificates.crt:ro)

image-base:  ## the Debian base (python3, venv, CA certificates) in buildah's storage
	@command -v mmdebstrap >/dev/null && command -v buildah >/dev/null || \
		{ echo "needs mmdebstrap and buildah: apt-get install mmdebstrap buildah"; exit 1; }
	mkdir -p build/image
	mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		$(SUITE) build/image/rootfs.tar
	ctr=$$(buildah from scratch) && buildah add $$ctr build/image/rootfs.tar / >/dev/null && \
		buildah config --cmd '["python3"]' $$ctr && buildah commit --quiet --rm $$ctr $(IMAGE_BASE)
	rm -f build/image/rootfs.tar

image:  ## build the image with buildah from the local Debian base (make image-base first)
	@buildah inspect --type image $(IMAGE_BASE) >/dev/null 2>&1 || $(MAKE) image-base
	buildah build --isolation chroot $(BUILD_CA) --build-arg BASE=$(IMAGE_BASE) -t $(IMAGE) -f Dockerfile .
	@buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' $(IMAGE)

image-test:  ## run the image's entry points in its own filesystem: --version, run --emulator, a gang bound
	tests/image/image-test.sh $(IMAGE)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
