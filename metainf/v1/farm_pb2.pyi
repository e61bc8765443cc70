from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HardwareProfile(_message.Message):
    __slots__ = ("kind", "accelerator", "accelerator_count", "accelerator_memory_gb", "compute_capability", "driver_version", "power_limit_w", "cpu_model", "cpu_cores", "ram_gb", "isa_flags", "cpu_clock_ghz", "memory_bandwidth_gbs")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_MEMORY_GB_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    POWER_LIMIT_W_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    RAM_GB_FIELD_NUMBER: _ClassVar[int]
    ISA_FLAGS_FIELD_NUMBER: _ClassVar[int]
    CPU_CLOCK_GHZ_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BANDWIDTH_GBS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    accelerator: str
    accelerator_count: int
    accelerator_memory_gb: float
    compute_capability: str
    driver_version: str
    power_limit_w: float
    cpu_model: str
    cpu_cores: int
    ram_gb: float
    isa_flags: _containers.RepeatedScalarFieldContainer[str]
    cpu_clock_ghz: float
    memory_bandwidth_gbs: float
    def __init__(self, kind: _Optional[str] = ..., accelerator: _Optional[str] = ..., accelerator_count: _Optional[int] = ..., accelerator_memory_gb: _Optional[float] = ..., compute_capability: _Optional[str] = ..., driver_version: _Optional[str] = ..., power_limit_w: _Optional[float] = ..., cpu_model: _Optional[str] = ..., cpu_cores: _Optional[int] = ..., ram_gb: _Optional[float] = ..., isa_flags: _Optional[_Iterable[str]] = ..., cpu_clock_ghz: _Optional[float] = ..., memory_bandwidth_gbs: _Optional[float] = ...) -> None: ...

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("name", "hardware", "price_per_hour", "engines", "engine_version", "echo_port", "echo_host")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ECHO_PORT_FIELD_NUMBER: _ClassVar[int]
    ECHO_HOST_FIELD_NUMBER: _ClassVar[int]
    name: str
    hardware: HardwareProfile
    price_per_hour: float
    engines: _containers.RepeatedScalarFieldContainer[str]
    engine_version: str
    echo_port: int
    echo_host: str
    def __init__(self, name: _Optional[str] = ..., hardware: _Optional[_Union[HardwareProfile, _Mapping]] = ..., price_per_hour: _Optional[float] = ..., engines: _Optional[_Iterable[str]] = ..., engine_version: _Optional[str] = ..., echo_port: _Optional[int] = ..., echo_host: _Optional[str] = ...) -> None: ...

class RegisterWorkerResponse(_message.Message):
    __slots__ = ("worker_id", "hardware_class", "hardware_label", "heartbeat_interval_s")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_CLASS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_LABEL_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    hardware_class: str
    hardware_label: str
    heartbeat_interval_s: float
    def __init__(self, worker_id: _Optional[str] = ..., hardware_class: _Optional[str] = ..., hardware_label: _Optional[str] = ..., heartbeat_interval_s: _Optional[float] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "cell_id", "epoch", "rtt_s", "peer_rtt_s")
    class PeerRttSEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CELL_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    RTT_S_FIELD_NUMBER: _ClassVar[int]
    PEER_RTT_S_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    cell_id: str
    epoch: int
    rtt_s: float
    peer_rtt_s: _containers.ScalarMap[str, float]
    def __init__(self, worker_id: _Optional[str] = ..., cell_id: _Optional[str] = ..., epoch: _Optional[int] = ..., rtt_s: _Optional[float] = ..., peer_rtt_s: _Optional[_Mapping[str, float]] = ...) -> None: ...

class PeerEcho(_message.Message):
    __slots__ = ("worker_id", "address")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    address: str
    def __init__(self, worker_id: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("known", "abort_cell", "measure_peers")
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    ABORT_CELL_FIELD_NUMBER: _ClassVar[int]
    MEASURE_PEERS_FIELD_NUMBER: _ClassVar[int]
    known: bool
    abort_cell: bool
    measure_peers: _containers.RepeatedCompositeFieldContainer[PeerEcho]
    def __init__(self, known: _Optional[bool] = ..., abort_cell: _Optional[bool] = ..., measure_peers: _Optional[_Iterable[_Union[PeerEcho, _Mapping]]] = ...) -> None: ...

class LeaseCellRequest(_message.Message):
    __slots__ = ("worker_id", "warm_engine_key")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WARM_ENGINE_KEY_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    warm_engine_key: str
    def __init__(self, worker_id: _Optional[str] = ..., warm_engine_key: _Optional[str] = ...) -> None: ...

class CellSpec(_message.Message):
    __slots__ = ("campaign_id", "cell_id", "epoch", "model", "method", "continuous_batching", "prefix_caching", "chunked_prefill", "engine_args_json", "workload_json", "batch_size", "repetitions", "replica", "engine_key", "timeout_s")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CELL_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_BATCHING_FIELD_NUMBER: _ClassVar[int]
    PREFIX_CACHING_FIELD_NUMBER: _ClassVar[int]
    CHUNKED_PREFILL_FIELD_NUMBER: _ClassVar[int]
    ENGINE_ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    REPETITIONS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    ENGINE_KEY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    cell_id: str
    epoch: int
    model: str
    method: str
    continuous_batching: bool
    prefix_caching: bool
    chunked_prefill: bool
    engine_args_json: str
    workload_json: str
    batch_size: int
    repetitions: int
    replica: int
    engine_key: str
    timeout_s: float
    def __init__(self, campaign_id: _Optional[str] = ..., cell_id: _Optional[str] = ..., epoch: _Optional[int] = ..., model: _Optional[str] = ..., method: _Optional[str] = ..., continuous_batching: _Optional[bool] = ..., prefix_caching: _Optional[bool] = ..., chunked_prefill: _Optional[bool] = ..., engine_args_json: _Optional[str] = ..., workload_json: _Optional[str] = ..., batch_size: _Optional[int] = ..., repetitions: _Optional[int] = ..., replica: _Optional[int] = ..., engine_key: _Optional[str] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class LeaseCellResponse(_message.Message):
    __slots__ = ("cell", "retry_after_s", "block_timing")
    CELL_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    BLOCK_TIMING_FIELD_NUMBER: _ClassVar[int]
    cell: CellSpec
    retry_after_s: float
    block_timing: BlockTimingSpec
    def __init__(self, cell: _Optional[_Union[CellSpec, _Mapping]] = ..., retry_after_s: _Optional[float] = ..., block_timing: _Optional[_Union[BlockTimingSpec, _Mapping]] = ...) -> None: ...

class BlockTimingSpec(_message.Message):
    __slots__ = ("timing_id", "model", "l_in", "repeats", "timeout_s")
    TIMING_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    L_IN_FIELD_NUMBER: _ClassVar[int]
    REPEATS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    timing_id: str
    model: str
    l_in: int
    repeats: int
    timeout_s: float
    def __init__(self, timing_id: _Optional[str] = ..., model: _Optional[str] = ..., l_in: _Optional[int] = ..., repeats: _Optional[int] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class ReportBlockTimingRequest(_message.Message):
    __slots__ = ("worker_id", "timing_id", "status", "error", "tau_s", "tau_prefill_s", "device", "dtype", "torch_version")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TIMING_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TAU_S_FIELD_NUMBER: _ClassVar[int]
    TAU_PREFILL_S_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    TORCH_VERSION_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    timing_id: str
    status: str
    error: str
    tau_s: float
    tau_prefill_s: float
    device: str
    dtype: str
    torch_version: str
    def __init__(self, worker_id: _Optional[str] = ..., timing_id: _Optional[str] = ..., status: _Optional[str] = ..., error: _Optional[str] = ..., tau_s: _Optional[float] = ..., tau_prefill_s: _Optional[float] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., torch_version: _Optional[str] = ...) -> None: ...

class ReportBlockTimingResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    def __init__(self, stored: _Optional[bool] = ...) -> None: ...

class RunResult(_message.Message):
    __slots__ = ("repetition", "status", "error", "runtime_s", "request_throughput", "throughput_tok_s", "ttft_p50_s", "ttft_p99_s", "itl_p50_s", "itl_p99_s", "peak_mem_gb", "energy_j")
    REPETITION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_S_FIELD_NUMBER: _ClassVar[int]
    REQUEST_THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_TOK_S_FIELD_NUMBER: _ClassVar[int]
    TTFT_P50_S_FIELD_NUMBER: _ClassVar[int]
    TTFT_P99_S_FIELD_NUMBER: _ClassVar[int]
    ITL_P50_S_FIELD_NUMBER: _ClassVar[int]
    ITL_P99_S_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEM_GB_FIELD_NUMBER: _ClassVar[int]
    ENERGY_J_FIELD_NUMBER: _ClassVar[int]
    repetition: int
    status: str
    error: str
    runtime_s: float
    request_throughput: float
    throughput_tok_s: float
    ttft_p50_s: float
    ttft_p99_s: float
    itl_p50_s: float
    itl_p99_s: float
    peak_mem_gb: float
    energy_j: float
    def __init__(self, repetition: _Optional[int] = ..., status: _Optional[str] = ..., error: _Optional[str] = ..., runtime_s: _Optional[float] = ..., request_throughput: _Optional[float] = ..., throughput_tok_s: _Optional[float] = ..., ttft_p50_s: _Optional[float] = ..., ttft_p99_s: _Optional[float] = ..., itl_p50_s: _Optional[float] = ..., itl_p99_s: _Optional[float] = ..., peak_mem_gb: _Optional[float] = ..., energy_j: _Optional[float] = ...) -> None: ...

class ReportResultRequest(_message.Message):
    __slots__ = ("worker_id", "campaign_id", "cell_id", "epoch", "status", "error", "runs", "engine", "engine_version", "weights", "engine_config_json", "engine_start_s")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CELL_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    ENGINE_START_S_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    campaign_id: str
    cell_id: str
    epoch: int
    status: str
    error: str
    runs: _containers.RepeatedCompositeFieldContainer[RunResult]
    engine: str
    engine_version: str
    weights: str
    engine_config_json: str
    engine_start_s: float
    def __init__(self, worker_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., cell_id: _Optional[str] = ..., epoch: _Optional[int] = ..., status: _Optional[str] = ..., error: _Optional[str] = ..., runs: _Optional[_Iterable[_Union[RunResult, _Mapping]]] = ..., engine: _Optional[str] = ..., engine_version: _Optional[str] = ..., weights: _Optional[str] = ..., engine_config_json: _Optional[str] = ..., engine_start_s: _Optional[float] = ...) -> None: ...

class ReportResultResponse(_message.Message):
    __slots__ = ("stored", "flagged")
    STORED_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    stored: int
    flagged: str
    def __init__(self, stored: _Optional[int] = ..., flagged: _Optional[str] = ...) -> None: ...

class SubmitCampaignRequest(_message.Message):
    __slots__ = ("grid_json",)
    GRID_JSON_FIELD_NUMBER: _ClassVar[int]
    grid_json: str
    def __init__(self, grid_json: _Optional[str] = ...) -> None: ...

class SubmitCampaignResponse(_message.Message):
    __slots__ = ("campaign_id", "cells_per_hardware_class")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CELLS_PER_HARDWARE_CLASS_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    cells_per_hardware_class: int
    def __init__(self, campaign_id: _Optional[str] = ..., cells_per_hardware_class: _Optional[int] = ...) -> None: ...

class GetCampaignStatusRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class WorkerProgress(_message.Message):
    __slots__ = ("worker_id", "name", "hardware_label", "cells_done", "current_cell")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_LABEL_FIELD_NUMBER: _ClassVar[int]
    CELLS_DONE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_CELL_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    name: str
    hardware_label: str
    cells_done: int
    current_cell: str
    def __init__(self, worker_id: _Optional[str] = ..., name: _Optional[str] = ..., hardware_label: _Optional[str] = ..., cells_done: _Optional[int] = ..., current_cell: _Optional[str] = ...) -> None: ...

class CampaignStatus(_message.Message):
    __slots__ = ("campaign_id", "name", "state", "cells", "total_cells", "workers", "eta_s", "hardware_classes", "created_at", "replica_groups", "drift", "drift_note", "strategy", "strategy_note")
    class CellsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ReplicaGroupsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CELLS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CELLS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_CLASSES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLICA_GROUPS_FIELD_NUMBER: _ClassVar[int]
    DRIFT_FIELD_NUMBER: _ClassVar[int]
    DRIFT_NOTE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_NOTE_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    name: str
    state: str
    cells: _containers.ScalarMap[str, int]
    total_cells: int
    workers: _containers.RepeatedCompositeFieldContainer[WorkerProgress]
    eta_s: float
    hardware_classes: _containers.RepeatedScalarFieldContainer[str]
    created_at: float
    replica_groups: _containers.ScalarMap[str, int]
    drift: _containers.RepeatedCompositeFieldContainer[HardwareDrift]
    drift_note: str
    strategy: str
    strategy_note: str
    def __init__(self, campaign_id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., cells: _Optional[_Mapping[str, int]] = ..., total_cells: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[WorkerProgress, _Mapping]]] = ..., eta_s: _Optional[float] = ..., hardware_classes: _Optional[_Iterable[str]] = ..., created_at: _Optional[float] = ..., replica_groups: _Optional[_Mapping[str, int]] = ..., drift: _Optional[_Iterable[_Union[HardwareDrift, _Mapping]]] = ..., drift_note: _Optional[str] = ..., strategy: _Optional[str] = ..., strategy_note: _Optional[str] = ...) -> None: ...

class HardwareDrift(_message.Message):
    __slots__ = ("hardware_class", "hardware_label", "results", "mdape", "held_out_mdape", "flagged", "model_versions")
    HARDWARE_CLASS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_LABEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MDAPE_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_MDAPE_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    hardware_class: str
    hardware_label: str
    results: int
    mdape: float
    held_out_mdape: float
    flagged: bool
    model_versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hardware_class: _Optional[str] = ..., hardware_label: _Optional[str] = ..., results: _Optional[int] = ..., mdape: _Optional[float] = ..., held_out_mdape: _Optional[float] = ..., flagged: _Optional[bool] = ..., model_versions: _Optional[_Iterable[str]] = ...) -> None: ...

class ExportResultsRequest(_message.Message):
    __slots__ = ("campaign_id", "all_replicas")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    all_replicas: bool
    def __init__(self, campaign_id: _Optional[str] = ..., all_replicas: _Optional[bool] = ...) -> None: ...

class ResultRow(_message.Message):
    __slots__ = ("campaign_id", "cell_id", "model", "method", "continuous_batching", "prefix_caching", "chunked_prefill", "hardware", "worker", "dataset", "batch_size", "num_prompts", "max_output_tokens", "repetition", "replica", "run", "engine", "engine_version", "weights", "engine_config_json", "workload", "engine_start_s", "accepted")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CELL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_BATCHING_FIELD_NUMBER: _ClassVar[int]
    PREFIX_CACHING_FIELD_NUMBER: _ClassVar[int]
    CHUNKED_PREFILL_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REPETITION_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    ENGINE_START_S_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    cell_id: str
    model: str
    method: str
    continuous_batching: bool
    prefix_caching: bool
    chunked_prefill: bool
    hardware: str
    worker: str
    dataset: str
    batch_size: int
    num_prompts: int
    max_output_tokens: int
    repetition: int
    replica: int
    run: RunResult
    engine: str
    engine_version: str
    weights: str
    engine_config_json: str
    workload: str
    engine_start_s: float
    accepted: bool
    def __init__(self, campaign_id: _Optional[str] = ..., cell_id: _Optional[str] = ..., model: _Optional[str] = ..., method: _Optional[str] = ..., continuous_batching: _Optional[bool] = ..., prefix_caching: _Optional[bool] = ..., chunked_prefill: _Optional[bool] = ..., hardware: _Optional[str] = ..., worker: _Optional[str] = ..., dataset: _Optional[str] = ..., batch_size: _Optional[int] = ..., num_prompts: _Optional[int] = ..., max_output_tokens: _Optional[int] = ..., repetition: _Optional[int] = ..., replica: _Optional[int] = ..., run: _Optional[_Union[RunResult, _Mapping]] = ..., engine: _Optional[str] = ..., engine_version: _Optional[str] = ..., weights: _Optional[str] = ..., engine_config_json: _Optional[str] = ..., workload: _Optional[str] = ..., engine_start_s: _Optional[float] = ..., accepted: _Optional[bool] = ...) -> None: ...

class ExportChunk(_message.Message):
    __slots__ = ("rows", "meta_json")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    META_JSON_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ResultRow]
    meta_json: str
    def __init__(self, rows: _Optional[_Iterable[_Union[ResultRow, _Mapping]]] = ..., meta_json: _Optional[str] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("worker_id", "name", "hardware_class", "hardware_label", "hardware", "price_per_hour", "state", "last_heartbeat", "current_cell", "rtt_s", "peer_rtt_s")
    class PeerRttSEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_CLASS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_LABEL_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_CELL_FIELD_NUMBER: _ClassVar[int]
    RTT_S_FIELD_NUMBER: _ClassVar[int]
    PEER_RTT_S_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    name: str
    hardware_class: str
    hardware_label: str
    hardware: HardwareProfile
    price_per_hour: float
    state: str
    last_heartbeat: float
    current_cell: str
    rtt_s: float
    peer_rtt_s: _containers.ScalarMap[str, float]
    def __init__(self, worker_id: _Optional[str] = ..., name: _Optional[str] = ..., hardware_class: _Optional[str] = ..., hardware_label: _Optional[str] = ..., hardware: _Optional[_Union[HardwareProfile, _Mapping]] = ..., price_per_hour: _Optional[float] = ..., state: _Optional[str] = ..., last_heartbeat: _Optional[float] = ..., current_cell: _Optional[str] = ..., rtt_s: _Optional[float] = ..., peer_rtt_s: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ...) -> None: ...

class HardwareOption(_message.Message):
    __slots__ = ("name", "text", "price_per_hour", "count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    text: str
    price_per_hour: float
    count: int
    def __init__(self, name: _Optional[str] = ..., text: _Optional[str] = ..., price_per_hour: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class SelectRequest(_message.Message):
    __slots__ = ("model", "model_text", "hardware", "workload_json", "methods", "budget", "objective", "all_farm_hardware", "risk", "measure_if_unsure")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_TEXT_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    ALL_FARM_HARDWARE_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    MEASURE_IF_UNSURE_FIELD_NUMBER: _ClassVar[int]
    model: str
    model_text: str
    hardware: _containers.RepeatedCompositeFieldContainer[HardwareOption]
    workload_json: str
    methods: _containers.RepeatedScalarFieldContainer[str]
    budget: float
    objective: str
    all_farm_hardware: bool
    risk: str
    measure_if_unsure: bool
    def __init__(self, model: _Optional[str] = ..., model_text: _Optional[str] = ..., hardware: _Optional[_Iterable[_Union[HardwareOption, _Mapping]]] = ..., workload_json: _Optional[str] = ..., methods: _Optional[_Iterable[str]] = ..., budget: _Optional[float] = ..., objective: _Optional[str] = ..., all_farm_hardware: _Optional[bool] = ..., risk: _Optional[str] = ..., measure_if_unsure: _Optional[bool] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("method", "hardware", "predicted", "cost", "feasible", "reason", "count", "interval")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    FEASIBLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    method: str
    hardware: str
    predicted: float
    cost: float
    feasible: bool
    reason: str
    count: int
    interval: Interval
    def __init__(self, method: _Optional[str] = ..., hardware: _Optional[str] = ..., predicted: _Optional[float] = ..., cost: _Optional[float] = ..., feasible: _Optional[bool] = ..., reason: _Optional[str] = ..., count: _Optional[int] = ..., interval: _Optional[_Union[Interval, _Mapping]] = ...) -> None: ...

class Interval(_message.Message):
    __slots__ = ("low", "high")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    low: float
    high: float
    def __init__(self, low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class AxisDistance(_message.Message):
    __slots__ = ("axis", "nearest", "distance", "threshold", "out_of_distribution")
    AXIS_FIELD_NUMBER: _ClassVar[int]
    NEAREST_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    axis: str
    nearest: str
    distance: float
    threshold: float
    out_of_distribution: bool
    def __init__(self, axis: _Optional[str] = ..., nearest: _Optional[str] = ..., distance: _Optional[float] = ..., threshold: _Optional[float] = ..., out_of_distribution: _Optional[bool] = ...) -> None: ...

class SelectResponse(_message.Message):
    __slots__ = ("method", "hardware", "feasible", "model_version", "candidates", "nearest_known_hardware", "metric", "lower_is_better", "message", "memory_margin", "confidence", "out_of_distribution", "ood_axes", "distances", "measure_campaign_id", "measure_note")
    class NearestKnownHardwareEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    FEASIBLE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    NEAREST_KNOWN_HARDWARE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LOWER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MARGIN_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    OOD_AXES_FIELD_NUMBER: _ClassVar[int]
    DISTANCES_FIELD_NUMBER: _ClassVar[int]
    MEASURE_CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    MEASURE_NOTE_FIELD_NUMBER: _ClassVar[int]
    method: str
    hardware: str
    feasible: bool
    model_version: str
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    nearest_known_hardware: _containers.ScalarMap[str, str]
    metric: str
    lower_is_better: bool
    message: str
    memory_margin: float
    confidence: float
    out_of_distribution: bool
    ood_axes: _containers.RepeatedScalarFieldContainer[str]
    distances: _containers.RepeatedCompositeFieldContainer[AxisDistance]
    measure_campaign_id: str
    measure_note: str
    def __init__(self, method: _Optional[str] = ..., hardware: _Optional[str] = ..., feasible: _Optional[bool] = ..., model_version: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., nearest_known_hardware: _Optional[_Mapping[str, str]] = ..., metric: _Optional[str] = ..., lower_is_better: _Optional[bool] = ..., message: _Optional[str] = ..., memory_margin: _Optional[float] = ..., confidence: _Optional[float] = ..., out_of_distribution: _Optional[bool] = ..., ood_axes: _Optional[_Iterable[str]] = ..., distances: _Optional[_Iterable[_Union[AxisDistance, _Mapping]]] = ..., measure_campaign_id: _Optional[str] = ..., measure_note: _Optional[str] = ...) -> None: ...

class ReloadModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadModelResponse(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    def __init__(self, model_version: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeldOutScores(_message.Message):
    __slots__ = ("n_tasks", "regret", "level_mdape", "accuracy")
    N_TASKS_FIELD_NUMBER: _ClassVar[int]
    REGRET_FIELD_NUMBER: _ClassVar[int]
    LEVEL_MDAPE_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    n_tasks: int
    regret: float
    level_mdape: float
    accuracy: float
    def __init__(self, n_tasks: _Optional[int] = ..., regret: _Optional[float] = ..., level_mdape: _Optional[float] = ..., accuracy: _Optional[float] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("version", "trained_at", "n_tasks", "n_pairs", "serving", "retrain", "error")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRAINED_AT_FIELD_NUMBER: _ClassVar[int]
    N_TASKS_FIELD_NUMBER: _ClassVar[int]
    N_PAIRS_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    RETRAIN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    version: str
    trained_at: float
    n_tasks: int
    n_pairs: int
    serving: bool
    retrain: RetrainRecord
    error: str
    def __init__(self, version: _Optional[str] = ..., trained_at: _Optional[float] = ..., n_tasks: _Optional[int] = ..., n_pairs: _Optional[int] = ..., serving: _Optional[bool] = ..., retrain: _Optional[_Union[RetrainRecord, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class RetrainRecord(_message.Message):
    __slots__ = ("trigger", "rows", "tasks", "heldout", "serving_heldout", "serving_version", "promoted", "reason")
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    HELDOUT_FIELD_NUMBER: _ClassVar[int]
    SERVING_HELDOUT_FIELD_NUMBER: _ClassVar[int]
    SERVING_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    trigger: str
    rows: int
    tasks: int
    heldout: HeldOutScores
    serving_heldout: HeldOutScores
    serving_version: str
    promoted: bool
    reason: str
    def __init__(self, trigger: _Optional[str] = ..., rows: _Optional[int] = ..., tasks: _Optional[int] = ..., heldout: _Optional[_Union[HeldOutScores, _Mapping]] = ..., serving_heldout: _Optional[_Union[HeldOutScores, _Mapping]] = ..., serving_version: _Optional[str] = ..., promoted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("versions", "serving_version")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    SERVING_VERSION_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    serving_version: str
    def __init__(self, versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., serving_version: _Optional[str] = ...) -> None: ...

class PromoteModelRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class PromoteModelResponse(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    def __init__(self, model_version: _Optional[str] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PlaceModel(_message.Message):
    __slots__ = ("catalog", "params_per_block", "weight_bits", "block_overhead", "cache_bytes_per_value")
    CATALOG_FIELD_NUMBER: _ClassVar[int]
    PARAMS_PER_BLOCK_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_BITS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_OVERHEAD_FIELD_NUMBER: _ClassVar[int]
    CACHE_BYTES_PER_VALUE_FIELD_NUMBER: _ClassVar[int]
    catalog: str
    params_per_block: float
    weight_bits: float
    block_overhead: float
    cache_bytes_per_value: float
    def __init__(self, catalog: _Optional[str] = ..., params_per_block: _Optional[float] = ..., weight_bits: _Optional[float] = ..., block_overhead: _Optional[float] = ..., cache_bytes_per_value: _Optional[float] = ...) -> None: ...

class PlaceServer(_message.Message):
    __slots__ = ("name", "count", "memory_gb", "tau_ms", "tau_prefill_ms", "hardware", "bandwidth_tbs", "tflops", "region", "petals_throughput")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_GB_FIELD_NUMBER: _ClassVar[int]
    TAU_MS_FIELD_NUMBER: _ClassVar[int]
    TAU_PREFILL_MS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_TBS_FIELD_NUMBER: _ClassVar[int]
    TFLOPS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    PETALS_THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: int
    memory_gb: float
    tau_ms: float
    tau_prefill_ms: float
    hardware: str
    bandwidth_tbs: float
    tflops: float
    region: str
    petals_throughput: float
    def __init__(self, name: _Optional[str] = ..., count: _Optional[int] = ..., memory_gb: _Optional[float] = ..., tau_ms: _Optional[float] = ..., tau_prefill_ms: _Optional[float] = ..., hardware: _Optional[str] = ..., bandwidth_tbs: _Optional[float] = ..., tflops: _Optional[float] = ..., region: _Optional[str] = ..., petals_throughput: _Optional[float] = ...) -> None: ...

class PlaceClient(_message.Message):
    __slots__ = ("name", "count", "region", "sessions", "arrival_rate")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    ARRIVAL_RATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: int
    region: str
    sessions: int
    arrival_rate: float
    def __init__(self, name: _Optional[str] = ..., count: _Optional[int] = ..., region: _Optional[str] = ..., sessions: _Optional[int] = ..., arrival_rate: _Optional[float] = ...) -> None: ...

class RegionRTT(_message.Message):
    __slots__ = ("a", "b", "ms", "ms_max")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    MS_MAX_FIELD_NUMBER: _ClassVar[int]
    a: str
    b: str
    ms: float
    ms_max: float
    def __init__(self, a: _Optional[str] = ..., b: _Optional[str] = ..., ms: _Optional[float] = ..., ms_max: _Optional[float] = ...) -> None: ...

class RTTRow(_message.Message):
    __slots__ = ("ms",)
    MS_FIELD_NUMBER: _ClassVar[int]
    ms: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, ms: _Optional[_Iterable[float]] = ...) -> None: ...

class PlaceRTT(_message.Message):
    __slots__ = ("client_server_extra_ms", "regions", "client_server_ms", "server_server_ms")
    CLIENT_SERVER_EXTRA_MS_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SERVER_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_SERVER_MS_FIELD_NUMBER: _ClassVar[int]
    client_server_extra_ms: float
    regions: _containers.RepeatedCompositeFieldContainer[RegionRTT]
    client_server_ms: _containers.RepeatedCompositeFieldContainer[RTTRow]
    server_server_ms: _containers.RepeatedCompositeFieldContainer[RTTRow]
    def __init__(self, client_server_extra_ms: _Optional[float] = ..., regions: _Optional[_Iterable[_Union[RegionRTT, _Mapping]]] = ..., client_server_ms: _Optional[_Iterable[_Union[RTTRow, _Mapping]]] = ..., server_server_ms: _Optional[_Iterable[_Union[RTTRow, _Mapping]]] = ...) -> None: ...

class PlaceLoad(_message.Message):
    __slots__ = ("sessions", "l_in", "l_out", "arrival_rate")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    L_IN_FIELD_NUMBER: _ClassVar[int]
    L_OUT_FIELD_NUMBER: _ClassVar[int]
    ARRIVAL_RATE_FIELD_NUMBER: _ClassVar[int]
    sessions: int
    l_in: int
    l_out: int
    arrival_rate: float
    def __init__(self, sessions: _Optional[int] = ..., l_in: _Optional[int] = ..., l_out: _Optional[int] = ..., arrival_rate: _Optional[float] = ...) -> None: ...

class PlaceRequest(_message.Message):
    __slots__ = ("model", "workers", "servers", "clients", "rtt", "load", "algorithm", "seed", "petals_join_orders", "milp_time_limit_s")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    RTT_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PETALS_JOIN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    MILP_TIME_LIMIT_S_FIELD_NUMBER: _ClassVar[int]
    model: PlaceModel
    workers: _containers.RepeatedScalarFieldContainer[str]
    servers: _containers.RepeatedCompositeFieldContainer[PlaceServer]
    clients: _containers.RepeatedCompositeFieldContainer[PlaceClient]
    rtt: PlaceRTT
    load: PlaceLoad
    algorithm: str
    seed: int
    petals_join_orders: int
    milp_time_limit_s: float
    def __init__(self, model: _Optional[_Union[PlaceModel, _Mapping]] = ..., workers: _Optional[_Iterable[str]] = ..., servers: _Optional[_Iterable[_Union[PlaceServer, _Mapping]]] = ..., clients: _Optional[_Iterable[_Union[PlaceClient, _Mapping]]] = ..., rtt: _Optional[_Union[PlaceRTT, _Mapping]] = ..., load: _Optional[_Union[PlaceLoad, _Mapping]] = ..., algorithm: _Optional[str] = ..., seed: _Optional[int] = ..., petals_join_orders: _Optional[int] = ..., milp_time_limit_s: _Optional[float] = ...) -> None: ...

class BlockRange(_message.Message):
    __slots__ = ("server", "first_block", "last_block")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    FIRST_BLOCK_FIELD_NUMBER: _ClassVar[int]
    LAST_BLOCK_FIELD_NUMBER: _ClassVar[int]
    server: str
    first_block: int
    last_block: int
    def __init__(self, server: _Optional[str] = ..., first_block: _Optional[int] = ..., last_block: _Optional[int] = ...) -> None: ...

class ClientRoute(_message.Message):
    __slots__ = ("client", "hops", "predicted_s_per_token")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_S_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    client: str
    hops: _containers.RepeatedCompositeFieldContainer[BlockRange]
    predicted_s_per_token: float
    def __init__(self, client: _Optional[str] = ..., hops: _Optional[_Iterable[_Union[BlockRange, _Mapping]]] = ..., predicted_s_per_token: _Optional[float] = ...) -> None: ...

class PlanResult(_message.Message):
    __slots__ = ("algorithm", "status", "error", "ranges", "routes", "predicted_s_per_token", "objective_s", "plan_s", "join_orders", "info_json")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_S_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_S_FIELD_NUMBER: _ClassVar[int]
    PLAN_S_FIELD_NUMBER: _ClassVar[int]
    JOIN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    INFO_JSON_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    status: str
    error: str
    ranges: _containers.RepeatedCompositeFieldContainer[BlockRange]
    routes: _containers.RepeatedCompositeFieldContainer[ClientRoute]
    predicted_s_per_token: float
    objective_s: float
    plan_s: float
    join_orders: int
    info_json: str
    def __init__(self, algorithm: _Optional[str] = ..., status: _Optional[str] = ..., error: _Optional[str] = ..., ranges: _Optional[_Iterable[_Union[BlockRange, _Mapping]]] = ..., routes: _Optional[_Iterable[_Union[ClientRoute, _Mapping]]] = ..., predicted_s_per_token: _Optional[float] = ..., objective_s: _Optional[float] = ..., plan_s: _Optional[float] = ..., join_orders: _Optional[int] = ..., info_json: _Optional[str] = ...) -> None: ...

class PlacedServer(_message.Message):
    __slots__ = ("name", "worker_id", "memory_gb", "tau_ms", "tau_prefill_ms", "tau_estimated", "region")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_GB_FIELD_NUMBER: _ClassVar[int]
    TAU_MS_FIELD_NUMBER: _ClassVar[int]
    TAU_PREFILL_MS_FIELD_NUMBER: _ClassVar[int]
    TAU_ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    name: str
    worker_id: str
    memory_gb: float
    tau_ms: float
    tau_prefill_ms: float
    tau_estimated: bool
    region: str
    def __init__(self, name: _Optional[str] = ..., worker_id: _Optional[str] = ..., memory_gb: _Optional[float] = ..., tau_ms: _Optional[float] = ..., tau_prefill_ms: _Optional[float] = ..., tau_estimated: _Optional[bool] = ..., region: _Optional[str] = ...) -> None: ...

class PlaceResponse(_message.Message):
    __slots__ = ("model", "blocks", "servers", "plan", "petals", "notes")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    PETALS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    model: str
    blocks: int
    servers: _containers.RepeatedCompositeFieldContainer[PlacedServer]
    plan: PlanResult
    petals: PlanResult
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[str] = ..., blocks: _Optional[int] = ..., servers: _Optional[_Iterable[_Union[PlacedServer, _Mapping]]] = ..., plan: _Optional[_Union[PlanResult, _Mapping]] = ..., petals: _Optional[_Union[PlanResult, _Mapping]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...
