import uvicorn

from service_runtime import tracing
from service_runtime.logs import setup_logging
from user_service.app import create_app
from user_service.settings import Settings

settings = Settings()
setup_logging("user_service", settings.log_level)
tracing.setup("user_service", settings)
uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)
