# One image for the node, the CLI and the gateway: docker-compose.yml runs the
# same four-agency cluster as `accord cluster up`, one container per node.
FROM python:3.12-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY accord ./accord
COPY certs ./certs
COPY node ./node
COPY gateway ./gateway
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /cluster --no-create-home accord \
    && mkdir /cluster && chown accord /cluster

# The cluster volume is mounted here; a fresh named volume takes this directory's owner.
VOLUME /cluster
USER accord
CMD ["accord", "--help"]
