from tests.web.test_fuzz import *  # noqa
from tests.web.test_fuzz import world, app  # noqa

def test_dbg(world, app, capsys):
    from tests.web.fuzzing import fuzz, load_schema
    schema = load_schema(app, OPENAPI, seeds=world.seeds, protect=PROTECT)
    fuzz(schema, world.callers, seed=fuzz_seed(), examples=2, include=lambda l: "admin" in l or "jpki" in l or "kiosk" in l)
    from mynacard.accounts import service as a
    from tests.helpers import SYSTEM
    from datetime import UTC, datetime
    with capsys.disabled():
        for v in a.list_accounts(world.ctx, SYSTEM, datetime.now(UTC)):
            print(v)
