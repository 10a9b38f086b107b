#!/usr/bin/env bash
# Build, push and deploy gemma-service to Cloud Run with one NVIDIA L4 GPU.
#
#   PROJECT_ID=my-project deploy/cloudrun/deploy.sh            # build (Cloud Build), push, deploy
#   BUILDER=none IMAGE=europe-west1-docker.pkg.dev/p/gemma/gemma-service:v1 deploy/cloudrun/deploy.sh
#   deploy/cloudrun/deploy.sh --render                          # print the service YAML only
#   deploy/cloudrun/deploy.sh --dry-run                         # print the commands, run none
#
# Every value below can be overridden from the environment. See docs/deploy-cloudrun.md.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true # "&" in a value must stay a literal "&"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${HERE}/../.." && pwd)"

default_project() {
  if command -v gcloud >/dev/null 2>&1; then
    gcloud config get-value project 2>/dev/null || true
  fi
}

: "${PROJECT_ID:=$(default_project)}"
: "${REGION:=europe-west1}"          # L4 GPUs: europe-west1, europe-west4, us-central1, ...
: "${SERVICE:=gemma-service}"
: "${REPOSITORY:=gemma}"             # Artifact Registry repository (created if missing)
: "${IMAGE_TAG:=$(git -C "${ROOT}" rev-parse --short HEAD 2>/dev/null || date +%Y%m%d%H%M%S)}"
: "${IMAGE:=${REGION}-docker.pkg.dev/${PROJECT_ID:-PROJECT_ID}/${REPOSITORY}/${SERVICE}:${IMAGE_TAG}}"
: "${BUILDER:=cloudbuild}"           # cloudbuild | docker | none (deploy IMAGE as it is)
: "${CUDA_ARCHITECTURES:=89-real}"   # the L4 is compute capability 8.9
: "${EXTRAS:=postgres}"              # pip extras baked into the image
: "${GPU_TYPE:=nvidia-l4}"
: "${GPU_COUNT:=1}"
: "${CPU:=4}"                        # Cloud Run's minimum with an L4; 8 is the other choice
: "${MEMORY:=16Gi}"                  # the minimum with an L4
: "${MIN_INSTANCES:=0}"              # scale to zero
: "${MAX_INSTANCES:=2}"              # cost ceiling
: "${CONCURRENCY:=16}"               # requests per instance before another one starts
: "${TIMEOUT_SECONDS:=300}"          # Cloud Run's request timeout
# The service ends a request a little earlier, so the caller gets its 408, not Cloud Run's 504.
: "${REQUEST_TIMEOUT:=$((TIMEOUT_SECONDS - 10))}"
: "${GPU_LAYERS:=99}"                # more than any Gemma has: the whole model on the GPU
: "${CONTEXT_SIZE:=16384}"           # KV cache must fit the L4's 24 GB next to the weights
: "${PARALLEL:=8}"
: "${GPU_ZONAL_REDUNDANCY_DISABLED:=true}"
: "${INGRESS:=all}"                  # all | internal | internal-and-cloud-load-balancing
: "${SERVICE_ACCOUNT:=}"             # runtime service account (default: compute default)
: "${MODEL_BUCKET:=}"                # GCS bucket mounted read-only at /models ...
: "${MODEL_FILE:=}"                  # ... and the GGUF in it to serve (both or neither)
# --- security -------------------------------------------------------------------------------
: "${API_KEYS_SECRET:=}"             # Secret Manager secret holding comma-separated API keys
: "${ALLOW_UNAUTHENTICATED:=false}"  # true: anyone may call it (then API keys are required)
# Without API_KEYS_SECRET the service trusts Cloud Run IAM (GEMMA_ALLOW_UNAUTHENTICATED=true).
# TODO(security): JWT settings (GEMMA_JWT_*), if wanted, here and in service.yaml.

# The ${NAME}s service.yaml may hold.
TEMPLATE_VARS=(SERVICE REGION INGRESS MIN_INSTANCES MAX_INSTANCES GPU_ZONAL_REDUNDANCY_DISABLED
  CONCURRENCY TIMEOUT_SECONDS REQUEST_TIMEOUT SERVICE_ACCOUNT GPU_TYPE IMAGE GPU_LAYERS
  CONTEXT_SIZE PARALLEL MODEL_FILE API_KEYS_SECRET CPU MEMORY GPU_COUNT MODEL_BUCKET)

DRY_RUN=false

die() {
  echo "deploy.sh: $*" >&2
  exit 1
}

run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [ "${DRY_RUN}" = false ]; then "$@"; fi
}

check_settings() {
  [ -n "${PROJECT_ID}" ] || die "set PROJECT_ID (or run: gcloud config set project ID)"
  if { [ -n "${MODEL_BUCKET}" ] && [ -z "${MODEL_FILE}" ]; } ||
    { [ -z "${MODEL_BUCKET}" ] && [ -n "${MODEL_FILE}" ]; }; then
    die "set both MODEL_BUCKET and MODEL_FILE, or neither (to serve the baked-in default)"
  fi
  if [ "${ALLOW_UNAUTHENTICATED}" = true ] && [ -z "${API_KEYS_SECRET}" ]; then
    die "a public service (ALLOW_UNAUTHENTICATED=true) needs API_KEYS_SECRET: anyone could use the GPU"
  fi
  [ "${CPU}" -ge 4 ] 2>/dev/null || die "CPU must be at least 4 with an L4 GPU (got ${CPU})"
}

# The service YAML with ${VAR}s filled in and unconfigured optional blocks removed.
render() {
  local text name drop=()
  text="$(<"${HERE}/service.yaml")"
  for name in "${TEMPLATE_VARS[@]}"; do
    text="${text//\$\{${name}\}/${!name}}"
  done
  [ -n "${MODEL_BUCKET}" ] || drop+=(model-bucket)
  if [ -n "${API_KEYS_SECRET}" ]; then drop+=(iam-only); else drop+=(api-keys); fi
  [ -n "${SERVICE_ACCOUNT}" ] || drop+=(service-account)
  for name in "${drop[@]}"; do
    text="$(printf '%s\n' "${text}" | sed "/# >>> ${name}\$/,/# <<< ${name}\$/d")"
  done
  printf '%s\n' "${text}"
}

build_image() {
  case "${BUILDER}" in
    cloudbuild)
      # "^@^" makes @ the list separator, so values may hold commas (EXTRAS=postgres,embeddings).
      run gcloud builds submit "${ROOT}" --project "${PROJECT_ID}" \
        --config "${HERE}/cloudbuild.yaml" \
        --substitutions "^@^_IMAGE=${IMAGE}@_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}@_EXTRAS=${EXTRAS}"
      ;;
    docker)
      run docker build -f "${ROOT}/deploy/Dockerfile" --build-arg VARIANT=cuda \
        --build-arg "CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}" --build-arg "EXTRAS=${EXTRAS}" \
        -t "${IMAGE}" "${ROOT}"
      run gcloud auth configure-docker "${REGION}-docker.pkg.dev" --quiet
      run docker push "${IMAGE}"
      ;;
    none) echo "deploying ${IMAGE} as it is (BUILDER=none)" ;;
    *) die "BUILDER must be cloudbuild, docker or none (got ${BUILDER})" ;;
  esac
}

ensure_repository() {
  if [ "${BUILDER}" = none ]; then return; fi
  if [ "${DRY_RUN}" = true ] || ! gcloud artifacts repositories describe "${REPOSITORY}" \
    --project "${PROJECT_ID}" --location "${REGION}" >/dev/null 2>&1; then
    run gcloud artifacts repositories create "${REPOSITORY}" --project "${PROJECT_ID}" \
      --location "${REGION}" --repository-format docker \
      --description "gemma-service images" || true # already there (dry run, or a race)
  fi
}

RENDERED=""

deploy() {
  RENDERED="$(mktemp "${TMPDIR:-/tmp}/gemma-service.XXXXXX.yaml")"
  trap 'rm -f "${RENDERED}"' EXIT
  render >"${RENDERED}"
  run gcloud run services replace "${RENDERED}" --project "${PROJECT_ID}" --region "${REGION}"
  if [ "${ALLOW_UNAUTHENTICATED}" = true ]; then
    run gcloud run services add-iam-policy-binding "${SERVICE}" --project "${PROJECT_ID}" \
      --region "${REGION}" --member allUsers --role roles/run.invoker
  fi
}

main() {
  case "${1:-}" in
    --render)
      render
      return
      ;;
    --dry-run) DRY_RUN=true ;;
    -h | --help)
      sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
      return
      ;;
    "") ;;
    *) die "unknown argument ${1} (try --help)" ;;
  esac
  check_settings
  run gcloud services enable run.googleapis.com artifactregistry.googleapis.com \
    cloudbuild.googleapis.com --project "${PROJECT_ID}"
  ensure_repository
  build_image
  deploy
  if [ "${DRY_RUN}" = false ]; then
    local url
    url="$(gcloud run services describe "${SERVICE}" --project "${PROJECT_ID}" \
      --region "${REGION}" --format 'value(status.url)')"
    echo "deployed: ${url}"
    echo "check it: curl -s -H \"Authorization: Bearer \$(gcloud auth print-identity-token)\" ${url}/healthz"
  fi
}

main "$@"
