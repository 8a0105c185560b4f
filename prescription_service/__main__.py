import asyncio

from prescription_service.app import build

asyncio.run(build().run_forever())
