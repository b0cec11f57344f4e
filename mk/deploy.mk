# The deployment manifests (deploy/, docs/scale.md), included by the Makefile.
#
#   make test-manifests  offline: every manifest parses and conforms to the Kubernetes API's
#                        types (python3-kubernetes), the probes, the restricted security
#                        context, resources, the key from a Secret, and the numbers agree
#                        across files (tests/deploy/test_manifests.py); under a second
#   make test-kube       root: `podman kube play` of deploy/k8s/deployment.yaml with the
#                        image test's podman settings and base (tests/deploy/kube_play.py);
#                        builds python-runtime:3.10 (a cache hit after container_test.py),
#                        about a minute when the image is built
#
# catatonit: podman builds the pod's infra ("pause") image from it locally, instead of
# pulling one from a registry.
DEPLOY_PKGS = python3-pytest python3-yaml python3-kubernetes
KUBE_PKGS = $(DEPLOY_PKGS) podman runc catatonit debootstrap tar

.PHONY: test-manifests test-kube

test-manifests:
	@sh tools/install-deps.sh $(DEPLOY_PKGS)
	$(PYTHON) -m pytest tests/deploy/test_manifests.py -q -p no:cacheprovider $(PYTEST_ARGS)

test-kube:
	@sh tools/install-deps.sh $(KUBE_PKGS)
	$(PYTHON) -m pytest tests/deploy/kube_play.py -q -s -p no:cacheprovider $(PYTEST_ARGS)
