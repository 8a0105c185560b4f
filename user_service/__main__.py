import uvicorn

from service_runtime import tracing
from service_runtime.logs import setup_logging
from user_service.app import create_app
from user_service.settings import Settings

settings = Settings()
setup_logging("user_service", settings.log_level)
tracing.setup("user_service", settings)
# h11 (not httptools, if ever installed): a request line and headers still incomplete after 16 KiB
# are a 400, so a huge header or path is refused before it is buffered whole.
# No Server header: the answer does not name the server and its version.
uvicorn.run(
    create_app(settings),
    host=settings.host,
    port=settings.port,
    log_config=None,
    access_log=False,
    http="h11",
    server_header=False,
)
