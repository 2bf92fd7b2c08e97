"""A small but real Terraform provider, `example.com/stamp/stampecho`, for Stamp's offline tests.

No registry is reachable where Stamp's tests run, so `scripts/install-test-provider.sh` packages
this provider (written with the `tf` Python provider framework, which speaks Terraform's plugin
protocol) into a filesystem mirror that stands in for the registry.

One resource, `stampecho_value`: its `output` echoes its `input`.
"""

from tf import schema, types
from tf.provider import Provider, Resource
from tf.runner import run_provider


class Value(Resource):
    @classmethod
    def get_name(cls):
        return "value"

    @classmethod
    def get_schema(cls):
        return schema.Schema(
            attributes=[
                schema.Attribute("input", types.String(), required=True),
                schema.Attribute("output", types.String(), computed=True),
            ]
        )

    def create(self, ctx, planned):
        return {**planned, "output": planned["input"]}

    def read(self, ctx, current):
        return current

    def update(self, ctx, current, planned):
        return {**planned, "output": planned["input"]}

    def delete(self, ctx, current):
        return None


class StampEcho(Provider):
    def __init__(self):
        pass

    def get_model_prefix(self):
        return "stampecho_"

    def full_name(self):
        return "example.com/stamp/stampecho"

    def get_provider_schema(self, diags):
        return schema.Schema(attributes=[])

    def validate_config(self, diags, config):
        pass

    def configure_provider(self, diags, config):
        pass

    def get_data_sources(self):
        return []

    def get_resources(self):
        return [Value]

    def new_resource(self, klass):
        return klass()


if __name__ == "__main__":
    run_provider(StampEcho())
