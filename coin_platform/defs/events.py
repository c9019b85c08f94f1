"""Kafka messages into runs: the topic sensor factory (the candidate sensor is built with it), and
the run config (MessageConfig) of the jobs it launches.

Topic sensors keep their position (partition -> next offset) in the sensor cursor:
the daemon stores the cursor together with the tick's run requests, so a restarted
daemon or broker resumes exactly after the last message it turned into a run. The
run_key (the candidate id) makes a redelivered or republished message a
no-op.

Dagster's sensor daemon starts a sensor at most every 5 s. A tick that finds nothing new
waits on the topic for up to `events.sensor_wait_seconds` and returns with the first
messages that arrive, so a message waits a fraction of a second for its run rather than
half a daemon loop.

A message that does not parse, is too large, or names a symbol, strategy or
interval that is not configured goes to `<topic>.dlq` with the reason, and the sensor
moves on. Each run requested and each dead letter is a JSON line in COIN_HOME/logs (a sensor
tick's own log reaches no handler of ours), with the ids `coin trace` follows.
"""

import logging
from collections.abc import Callable

import dagster as dg

from coin_platform.defs.resources import KafkaResource
from coin_platform.events.kafka import Message, dead_letter, position_from_cursor, position_to_cursor, publish
from coin_platform.events.schemas import Allowlist, Candidate, MessageError
from coin_platform.events.trace_ids import candidate_ids
from coin_platform.ops.logs import (
    CODE_LOCATION_LOG,
    MESSAGE_DEAD_LETTERED,
    RUN_REQUESTED,
    json_file_logger,
    log_dir,
    log_event,
)
from coin_platform.settings import Settings


class MessageConfig(dg.Config):
    """The Kafka message (JSON) the run was launched for."""

    message: str


def build_topic_sensor(
    name: str,
    topic: str,
    job: dg.JobDefinition,
    op_name: str,
    parse: Callable[[bytes], Candidate],
    describe: Callable[[Candidate], tuple[str, dict[str, str]]],
    settings: Settings,
    description: str,
) -> dg.SensorDefinition:
    """A sensor requesting one `job` run per valid message of `topic` (run_key and tags from `describe`)."""
    events = settings.config.events
    dead_letter_topic = topic + events.dead_letter_suffix
    allowlist = Allowlist.from_config(settings.config)
    log = json_file_logger(f"coin_platform.sensors.{name}", log_dir(settings.coin_home) / CODE_LOCATION_LOG)

    def run_request(message: Message) -> dg.RunRequest:
        if message.value is None:
            raise MessageError("empty message")
        item = parse(message.value)
        allowlist.check(item)
        run_key, tags = describe(item)
        log_event(
            log,
            RUN_REQUESTED,
            f"{name}: {job.name} run requested for {topic}@{message.partition}:{message.offset} (run key {run_key})",
            **candidate_ids(item),
            sensor=name,
            job=job.name,
            run_key=run_key,
            topic=topic,
            offset=message.offset,
        )
        return dg.RunRequest(
            run_key=run_key,
            # MessageConfig of the op that handles the message
            run_config={"ops": {op_name: {"config": {"message": message.value.decode()}}}},
            tags={**tags, "coin/topic": topic, "coin/offset": f"{message.partition}:{message.offset}"},
        )

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=events.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )
    def topic_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource) -> dg.SensorResult:
        position = position_from_cursor(context.cursor)
        messages, after = kafka.read(topic, position, events.max_messages_per_tick, events.sensor_wait_seconds)
        runs, dead = [], []
        for message in messages:
            try:
                runs.append(run_request(message))
            # Whatever one message does, it must not stop the topic: the parser raises MessageError
            # for every bad input it knows; anything else is dead-lettered too, named by its type.
            except Exception as exc:  # noqa: BLE001
                reason = str(exc) if isinstance(exc, MessageError) else f"{type(exc).__name__}: {exc}"
                where = f"{topic}@{message.partition}:{message.offset}"
                context.log.warning(f"{where} to {dead_letter_topic}: {reason}")
                log_event(
                    log,
                    MESSAGE_DEAD_LETTERED,
                    f"{name}: {where} to {dead_letter_topic}: {reason}",
                    level=logging.WARNING,
                    sensor=name,
                    topic=topic,
                    offset=message.offset,
                    reason=reason,
                )
                dead.append(dead_letter(topic, message, reason))
        if dead:
            kafka.ensure_topics([dead_letter_topic])
            with kafka.producer() as producer:
                publish(producer, dead_letter_topic, dead)
        if not messages:
            return dg.SensorResult(skip_reason=f"no new messages on {topic}", cursor=position_to_cursor(after))
        return dg.SensorResult(run_requests=runs, cursor=position_to_cursor(after))

    return topic_sensor
