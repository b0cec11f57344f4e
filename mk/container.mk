# make test-container: the container image test (tests/container/container_test.py).
# Builds a local Debian 12 base with debootstrap (cached as a podman image), builds the
# Dockerfile on it with podman, then runs the seed's build/tar/launch steps. Root only;
# installs podman, runc, debootstrap and the setuptools/wheel wheels it needs offline.
CONTAINER_PKGS = podman runc debootstrap tar python3-setuptools-whl python3-wheel-whl

.PHONY: test-container
test-container: deps
	@sh tools/install-deps.sh $(CONTAINER_PKGS)
	$(PYTHON) tests/container/container_test.py
	@$(MAKE) --no-print-directory test-kube
