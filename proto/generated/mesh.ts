import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { ControlPlane as _envoy_config_core_v3_ControlPlane, ControlPlane__Output as _envoy_config_core_v3_ControlPlane__Output } from './envoy/config/core/v3/ControlPlane';
import type { Locality as _envoy_config_core_v3_Locality, Locality__Output as _envoy_config_core_v3_Locality__Output } from './envoy/config/core/v3/Locality';
import type { Metadata as _envoy_config_core_v3_Metadata, Metadata__Output as _envoy_config_core_v3_Metadata__Output } from './envoy/config/core/v3/Metadata';
import type { Node as _envoy_config_core_v3_Node, Node__Output as _envoy_config_core_v3_Node__Output } from './envoy/config/core/v3/Node';
import type { AggregatedDiscoveryServiceClient as _envoy_service_discovery_v3_AggregatedDiscoveryServiceClient, AggregatedDiscoveryServiceDefinition as _envoy_service_discovery_v3_AggregatedDiscoveryServiceDefinition } from './envoy/service/discovery/v3/AggregatedDiscoveryService';
import type { DeltaDiscoveryRequest as _envoy_service_discovery_v3_DeltaDiscoveryRequest, DeltaDiscoveryRequest__Output as _envoy_service_discovery_v3_DeltaDiscoveryRequest__Output } from './envoy/service/discovery/v3/DeltaDiscoveryRequest';
import type { DeltaDiscoveryResponse as _envoy_service_discovery_v3_DeltaDiscoveryResponse, DeltaDiscoveryResponse__Output as _envoy_service_discovery_v3_DeltaDiscoveryResponse__Output } from './envoy/service/discovery/v3/DeltaDiscoveryResponse';
import type { DiscoveryRequest as _envoy_service_discovery_v3_DiscoveryRequest, DiscoveryRequest__Output as _envoy_service_discovery_v3_DiscoveryRequest__Output } from './envoy/service/discovery/v3/DiscoveryRequest';
import type { DiscoveryResponse as _envoy_service_discovery_v3_DiscoveryResponse, DiscoveryResponse__Output as _envoy_service_discovery_v3_DiscoveryResponse__Output } from './envoy/service/discovery/v3/DiscoveryResponse';
import type { Resource as _envoy_service_discovery_v3_Resource, Resource__Output as _envoy_service_discovery_v3_Resource__Output } from './envoy/service/discovery/v3/Resource';
import type { Any as _google_protobuf_Any, Any__Output as _google_protobuf_Any__Output } from './google/protobuf/Any';
import type { BoolValue as _google_protobuf_BoolValue, BoolValue__Output as _google_protobuf_BoolValue__Output } from './google/protobuf/BoolValue';
import type { BytesValue as _google_protobuf_BytesValue, BytesValue__Output as _google_protobuf_BytesValue__Output } from './google/protobuf/BytesValue';
import type { DoubleValue as _google_protobuf_DoubleValue, DoubleValue__Output as _google_protobuf_DoubleValue__Output } from './google/protobuf/DoubleValue';
import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from './google/protobuf/Duration';
import type { Empty as _google_protobuf_Empty, Empty__Output as _google_protobuf_Empty__Output } from './google/protobuf/Empty';
import type { FloatValue as _google_protobuf_FloatValue, FloatValue__Output as _google_protobuf_FloatValue__Output } from './google/protobuf/FloatValue';
import type { Int32Value as _google_protobuf_Int32Value, Int32Value__Output as _google_protobuf_Int32Value__Output } from './google/protobuf/Int32Value';
import type { Int64Value as _google_protobuf_Int64Value, Int64Value__Output as _google_protobuf_Int64Value__Output } from './google/protobuf/Int64Value';
import type { ListValue as _google_protobuf_ListValue, ListValue__Output as _google_protobuf_ListValue__Output } from './google/protobuf/ListValue';
import type { StringValue as _google_protobuf_StringValue, StringValue__Output as _google_protobuf_StringValue__Output } from './google/protobuf/StringValue';
import type { Struct as _google_protobuf_Struct, Struct__Output as _google_protobuf_Struct__Output } from './google/protobuf/Struct';
import type { UInt32Value as _google_protobuf_UInt32Value, UInt32Value__Output as _google_protobuf_UInt32Value__Output } from './google/protobuf/UInt32Value';
import type { UInt64Value as _google_protobuf_UInt64Value, UInt64Value__Output as _google_protobuf_UInt64Value__Output } from './google/protobuf/UInt64Value';
import type { Value as _google_protobuf_Value, Value__Output as _google_protobuf_Value__Output } from './google/protobuf/Value';
import type { Status as _google_rpc_Status, Status__Output as _google_rpc_Status__Output } from './google/rpc/Status';
import type { Address as _istio_security_Address, Address__Output as _istio_security_Address__Output } from './istio/security/Address';
import type { Authorization as _istio_security_Authorization, Authorization__Output as _istio_security_Authorization__Output } from './istio/security/Authorization';
import type { Group as _istio_security_Group, Group__Output as _istio_security_Group__Output } from './istio/security/Group';
import type { Match as _istio_security_Match, Match__Output as _istio_security_Match__Output } from './istio/security/Match';
import type { Rules as _istio_security_Rules, Rules__Output as _istio_security_Rules__Output } from './istio/security/Rules';
import type { ServiceAccountMatch as _istio_security_ServiceAccountMatch, ServiceAccountMatch__Output as _istio_security_ServiceAccountMatch__Output } from './istio/security/ServiceAccountMatch';
import type { SmeshHeaderMatch as _istio_security_SmeshHeaderMatch, SmeshHeaderMatch__Output as _istio_security_SmeshHeaderMatch__Output } from './istio/security/SmeshHeaderMatch';
import type { StringMatch as _istio_security_StringMatch, StringMatch__Output as _istio_security_StringMatch__Output } from './istio/security/StringMatch';
import type { IstioCertificateRequest as _istio_v1_auth_IstioCertificateRequest, IstioCertificateRequest__Output as _istio_v1_auth_IstioCertificateRequest__Output } from './istio/v1/auth/IstioCertificateRequest';
import type { IstioCertificateResponse as _istio_v1_auth_IstioCertificateResponse, IstioCertificateResponse__Output as _istio_v1_auth_IstioCertificateResponse__Output } from './istio/v1/auth/IstioCertificateResponse';
import type { IstioCertificateServiceClient as _istio_v1_auth_IstioCertificateServiceClient, IstioCertificateServiceDefinition as _istio_v1_auth_IstioCertificateServiceDefinition } from './istio/v1/auth/IstioCertificateService';
import type { Roots as _istio_v1_auth_Roots, Roots__Output as _istio_v1_auth_Roots__Output } from './istio/v1/auth/Roots';
import type { Address as _istio_workload_Address, Address__Output as _istio_workload_Address__Output } from './istio/workload/Address';
import type { ApplicationTunnel as _istio_workload_ApplicationTunnel, ApplicationTunnel__Output as _istio_workload_ApplicationTunnel__Output } from './istio/workload/ApplicationTunnel';
import type { Extension as _istio_workload_Extension, Extension__Output as _istio_workload_Extension__Output } from './istio/workload/Extension';
import type { GatewayAddress as _istio_workload_GatewayAddress, GatewayAddress__Output as _istio_workload_GatewayAddress__Output } from './istio/workload/GatewayAddress';
import type { LoadBalancing as _istio_workload_LoadBalancing, LoadBalancing__Output as _istio_workload_LoadBalancing__Output } from './istio/workload/LoadBalancing';
import type { Locality as _istio_workload_Locality, Locality__Output as _istio_workload_Locality__Output } from './istio/workload/Locality';
import type { NamespacedHostname as _istio_workload_NamespacedHostname, NamespacedHostname__Output as _istio_workload_NamespacedHostname__Output } from './istio/workload/NamespacedHostname';
import type { NetworkAddress as _istio_workload_NetworkAddress, NetworkAddress__Output as _istio_workload_NetworkAddress__Output } from './istio/workload/NetworkAddress';
import type { Port as _istio_workload_Port, Port__Output as _istio_workload_Port__Output } from './istio/workload/Port';
import type { PortList as _istio_workload_PortList, PortList__Output as _istio_workload_PortList__Output } from './istio/workload/PortList';
import type { Service as _istio_workload_Service, Service__Output as _istio_workload_Service__Output } from './istio/workload/Service';
import type { Workload as _istio_workload_Workload, Workload__Output as _istio_workload_Workload__Output } from './istio/workload/Workload';
import type { LocalWorkload as _smesh_mesh_v1alpha1_LocalWorkload, LocalWorkload__Output as _smesh_mesh_v1alpha1_LocalWorkload__Output } from './smesh/mesh/v1alpha1/LocalWorkload';
import type { MeshConfig as _smesh_mesh_v1alpha1_MeshConfig, MeshConfig__Output as _smesh_mesh_v1alpha1_MeshConfig__Output } from './smesh/mesh/v1alpha1/MeshConfig';
import type { Node as _smesh_mesh_v1alpha1_Node, Node__Output as _smesh_mesh_v1alpha1_Node__Output } from './smesh/mesh/v1alpha1/Node';
import type { BytesPerSecond as _smesh_traffic_v1alpha1_BytesPerSecond, BytesPerSecond__Output as _smesh_traffic_v1alpha1_BytesPerSecond__Output } from './smesh/traffic/v1alpha1/BytesPerSecond';
import type { ConnectionPool as _smesh_traffic_v1alpha1_ConnectionPool, ConnectionPool__Output as _smesh_traffic_v1alpha1_ConnectionPool__Output } from './smesh/traffic/v1alpha1/ConnectionPool';
import type { ConsistentHash as _smesh_traffic_v1alpha1_ConsistentHash, ConsistentHash__Output as _smesh_traffic_v1alpha1_ConsistentHash__Output } from './smesh/traffic/v1alpha1/ConsistentHash';
import type { FaultInjection as _smesh_traffic_v1alpha1_FaultInjection, FaultInjection__Output as _smesh_traffic_v1alpha1_FaultInjection__Output } from './smesh/traffic/v1alpha1/FaultInjection';
import type { HttpMatch as _smesh_traffic_v1alpha1_HttpMatch, HttpMatch__Output as _smesh_traffic_v1alpha1_HttpMatch__Output } from './smesh/traffic/v1alpha1/HttpMatch';
import type { HttpRoute as _smesh_traffic_v1alpha1_HttpRoute, HttpRoute__Output as _smesh_traffic_v1alpha1_HttpRoute__Output } from './smesh/traffic/v1alpha1/HttpRoute';
import type { LoadBalancer as _smesh_traffic_v1alpha1_LoadBalancer, LoadBalancer__Output as _smesh_traffic_v1alpha1_LoadBalancer__Output } from './smesh/traffic/v1alpha1/LoadBalancer';
import type { LocalRateLimit as _smesh_traffic_v1alpha1_LocalRateLimit, LocalRateLimit__Output as _smesh_traffic_v1alpha1_LocalRateLimit__Output } from './smesh/traffic/v1alpha1/LocalRateLimit';
import type { LocalityFailover as _smesh_traffic_v1alpha1_LocalityFailover, LocalityFailover__Output as _smesh_traffic_v1alpha1_LocalityFailover__Output } from './smesh/traffic/v1alpha1/LocalityFailover';
import type { OutlierDetection as _smesh_traffic_v1alpha1_OutlierDetection, OutlierDetection__Output as _smesh_traffic_v1alpha1_OutlierDetection__Output } from './smesh/traffic/v1alpha1/OutlierDetection';
import type { OverLimit as _smesh_traffic_v1alpha1_OverLimit, OverLimit__Output as _smesh_traffic_v1alpha1_OverLimit__Output } from './smesh/traffic/v1alpha1/OverLimit';
import type { PortTrafficPolicy as _smesh_traffic_v1alpha1_PortTrafficPolicy, PortTrafficPolicy__Output as _smesh_traffic_v1alpha1_PortTrafficPolicy__Output } from './smesh/traffic/v1alpha1/PortTrafficPolicy';
import type { QosClass as _smesh_traffic_v1alpha1_QosClass, QosClass__Output as _smesh_traffic_v1alpha1_QosClass__Output } from './smesh/traffic/v1alpha1/QosClass';
import type { RateLimit as _smesh_traffic_v1alpha1_RateLimit, RateLimit__Output as _smesh_traffic_v1alpha1_RateLimit__Output } from './smesh/traffic/v1alpha1/RateLimit';
import type { RateLimitRule as _smesh_traffic_v1alpha1_RateLimitRule, RateLimitRule__Output as _smesh_traffic_v1alpha1_RateLimitRule__Output } from './smesh/traffic/v1alpha1/RateLimitRule';
import type { RetryBudget as _smesh_traffic_v1alpha1_RetryBudget, RetryBudget__Output as _smesh_traffic_v1alpha1_RetryBudget__Output } from './smesh/traffic/v1alpha1/RetryBudget';
import type { RetryPolicy as _smesh_traffic_v1alpha1_RetryPolicy, RetryPolicy__Output as _smesh_traffic_v1alpha1_RetryPolicy__Output } from './smesh/traffic/v1alpha1/RetryPolicy';
import type { StringMatch as _smesh_traffic_v1alpha1_StringMatch, StringMatch__Output as _smesh_traffic_v1alpha1_StringMatch__Output } from './smesh/traffic/v1alpha1/StringMatch';
import type { Subset as _smesh_traffic_v1alpha1_Subset, Subset__Output as _smesh_traffic_v1alpha1_Subset__Output } from './smesh/traffic/v1alpha1/Subset';
import type { TokenBucket as _smesh_traffic_v1alpha1_TokenBucket, TokenBucket__Output as _smesh_traffic_v1alpha1_TokenBucket__Output } from './smesh/traffic/v1alpha1/TokenBucket';
import type { TrafficPolicy as _smesh_traffic_v1alpha1_TrafficPolicy, TrafficPolicy__Output as _smesh_traffic_v1alpha1_TrafficPolicy__Output } from './smesh/traffic/v1alpha1/TrafficPolicy';
import type { TrafficShaping as _smesh_traffic_v1alpha1_TrafficShaping, TrafficShaping__Output as _smesh_traffic_v1alpha1_TrafficShaping__Output } from './smesh/traffic/v1alpha1/TrafficShaping';
import type { WeightedDestination as _smesh_traffic_v1alpha1_WeightedDestination, WeightedDestination__Output as _smesh_traffic_v1alpha1_WeightedDestination__Output } from './smesh/traffic/v1alpha1/WeightedDestination';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  envoy: {
    config: {
      core: {
        v3: {
          ControlPlane: MessageTypeDefinition<_envoy_config_core_v3_ControlPlane, _envoy_config_core_v3_ControlPlane__Output>
          Locality: MessageTypeDefinition<_envoy_config_core_v3_Locality, _envoy_config_core_v3_Locality__Output>
          Metadata: MessageTypeDefinition<_envoy_config_core_v3_Metadata, _envoy_config_core_v3_Metadata__Output>
          Node: MessageTypeDefinition<_envoy_config_core_v3_Node, _envoy_config_core_v3_Node__Output>
        }
      }
    }
    service: {
      discovery: {
        v3: {
          /**
           * One multiplexed stream per client; every message names its resource type in type_url.
           * Method paths: /envoy.service.discovery.v3.AggregatedDiscoveryService/<Method>.
           */
          AggregatedDiscoveryService: SubtypeConstructor<typeof grpc.Client, _envoy_service_discovery_v3_AggregatedDiscoveryServiceClient> & { service: _envoy_service_discovery_v3_AggregatedDiscoveryServiceDefinition }
          DeltaDiscoveryRequest: MessageTypeDefinition<_envoy_service_discovery_v3_DeltaDiscoveryRequest, _envoy_service_discovery_v3_DeltaDiscoveryRequest__Output>
          DeltaDiscoveryResponse: MessageTypeDefinition<_envoy_service_discovery_v3_DeltaDiscoveryResponse, _envoy_service_discovery_v3_DeltaDiscoveryResponse__Output>
          DiscoveryRequest: MessageTypeDefinition<_envoy_service_discovery_v3_DiscoveryRequest, _envoy_service_discovery_v3_DiscoveryRequest__Output>
          DiscoveryResponse: MessageTypeDefinition<_envoy_service_discovery_v3_DiscoveryResponse, _envoy_service_discovery_v3_DiscoveryResponse__Output>
          Resource: MessageTypeDefinition<_envoy_service_discovery_v3_Resource, _envoy_service_discovery_v3_Resource__Output>
        }
      }
    }
  }
  google: {
    protobuf: {
      Any: MessageTypeDefinition<_google_protobuf_Any, _google_protobuf_Any__Output>
      BoolValue: MessageTypeDefinition<_google_protobuf_BoolValue, _google_protobuf_BoolValue__Output>
      BytesValue: MessageTypeDefinition<_google_protobuf_BytesValue, _google_protobuf_BytesValue__Output>
      DoubleValue: MessageTypeDefinition<_google_protobuf_DoubleValue, _google_protobuf_DoubleValue__Output>
      Duration: MessageTypeDefinition<_google_protobuf_Duration, _google_protobuf_Duration__Output>
      Empty: MessageTypeDefinition<_google_protobuf_Empty, _google_protobuf_Empty__Output>
      FloatValue: MessageTypeDefinition<_google_protobuf_FloatValue, _google_protobuf_FloatValue__Output>
      Int32Value: MessageTypeDefinition<_google_protobuf_Int32Value, _google_protobuf_Int32Value__Output>
      Int64Value: MessageTypeDefinition<_google_protobuf_Int64Value, _google_protobuf_Int64Value__Output>
      ListValue: MessageTypeDefinition<_google_protobuf_ListValue, _google_protobuf_ListValue__Output>
      NullValue: EnumTypeDefinition
      StringValue: MessageTypeDefinition<_google_protobuf_StringValue, _google_protobuf_StringValue__Output>
      Struct: MessageTypeDefinition<_google_protobuf_Struct, _google_protobuf_Struct__Output>
      UInt32Value: MessageTypeDefinition<_google_protobuf_UInt32Value, _google_protobuf_UInt32Value__Output>
      UInt64Value: MessageTypeDefinition<_google_protobuf_UInt64Value, _google_protobuf_UInt64Value__Output>
      Value: MessageTypeDefinition<_google_protobuf_Value, _google_protobuf_Value__Output>
    }
    rpc: {
      Status: MessageTypeDefinition<_google_rpc_Status, _google_rpc_Status__Output>
    }
  }
  istio: {
    security: {
      Action: EnumTypeDefinition
      Address: MessageTypeDefinition<_istio_security_Address, _istio_security_Address__Output>
      Authorization: MessageTypeDefinition<_istio_security_Authorization, _istio_security_Authorization__Output>
      Group: MessageTypeDefinition<_istio_security_Group, _istio_security_Group__Output>
      Match: MessageTypeDefinition<_istio_security_Match, _istio_security_Match__Output>
      Rules: MessageTypeDefinition<_istio_security_Rules, _istio_security_Rules__Output>
      Scope: EnumTypeDefinition
      ServiceAccountMatch: MessageTypeDefinition<_istio_security_ServiceAccountMatch, _istio_security_ServiceAccountMatch__Output>
      SmeshHeaderMatch: MessageTypeDefinition<_istio_security_SmeshHeaderMatch, _istio_security_SmeshHeaderMatch__Output>
      StringMatch: MessageTypeDefinition<_istio_security_StringMatch, _istio_security_StringMatch__Output>
    }
    v1: {
      auth: {
        IstioCertificateRequest: MessageTypeDefinition<_istio_v1_auth_IstioCertificateRequest, _istio_v1_auth_IstioCertificateRequest__Output>
        IstioCertificateResponse: MessageTypeDefinition<_istio_v1_auth_IstioCertificateResponse, _istio_v1_auth_IstioCertificateResponse__Output>
        IstioCertificateService: SubtypeConstructor<typeof grpc.Client, _istio_v1_auth_IstioCertificateServiceClient> & { service: _istio_v1_auth_IstioCertificateServiceDefinition }
        Roots: MessageTypeDefinition<_istio_v1_auth_Roots, _istio_v1_auth_Roots__Output>
      }
    }
    workload: {
      Address: MessageTypeDefinition<_istio_workload_Address, _istio_workload_Address__Output>
      AppProtocol: EnumTypeDefinition
      ApplicationTunnel: MessageTypeDefinition<_istio_workload_ApplicationTunnel, _istio_workload_ApplicationTunnel__Output>
      Extension: MessageTypeDefinition<_istio_workload_Extension, _istio_workload_Extension__Output>
      GatewayAddress: MessageTypeDefinition<_istio_workload_GatewayAddress, _istio_workload_GatewayAddress__Output>
      IPFamilies: EnumTypeDefinition
      LoadBalancing: MessageTypeDefinition<_istio_workload_LoadBalancing, _istio_workload_LoadBalancing__Output>
      Locality: MessageTypeDefinition<_istio_workload_Locality, _istio_workload_Locality__Output>
      NamespacedHostname: MessageTypeDefinition<_istio_workload_NamespacedHostname, _istio_workload_NamespacedHostname__Output>
      NetworkAddress: MessageTypeDefinition<_istio_workload_NetworkAddress, _istio_workload_NetworkAddress__Output>
      NetworkMode: EnumTypeDefinition
      Port: MessageTypeDefinition<_istio_workload_Port, _istio_workload_Port__Output>
      PortList: MessageTypeDefinition<_istio_workload_PortList, _istio_workload_PortList__Output>
      Service: MessageTypeDefinition<_istio_workload_Service, _istio_workload_Service__Output>
      TunnelProtocol: EnumTypeDefinition
      Workload: MessageTypeDefinition<_istio_workload_Workload, _istio_workload_Workload__Output>
      WorkloadStatus: EnumTypeDefinition
      WorkloadType: EnumTypeDefinition
    }
  }
  smesh: {
    mesh: {
      v1alpha1: {
        LocalWorkload: MessageTypeDefinition<_smesh_mesh_v1alpha1_LocalWorkload, _smesh_mesh_v1alpha1_LocalWorkload__Output>
        MeshConfig: MessageTypeDefinition<_smesh_mesh_v1alpha1_MeshConfig, _smesh_mesh_v1alpha1_MeshConfig__Output>
        Node: MessageTypeDefinition<_smesh_mesh_v1alpha1_Node, _smesh_mesh_v1alpha1_Node__Output>
      }
    }
    traffic: {
      v1alpha1: {
        BytesPerSecond: MessageTypeDefinition<_smesh_traffic_v1alpha1_BytesPerSecond, _smesh_traffic_v1alpha1_BytesPerSecond__Output>
        ConnectionPool: MessageTypeDefinition<_smesh_traffic_v1alpha1_ConnectionPool, _smesh_traffic_v1alpha1_ConnectionPool__Output>
        ConsistentHash: MessageTypeDefinition<_smesh_traffic_v1alpha1_ConsistentHash, _smesh_traffic_v1alpha1_ConsistentHash__Output>
        FaultInjection: MessageTypeDefinition<_smesh_traffic_v1alpha1_FaultInjection, _smesh_traffic_v1alpha1_FaultInjection__Output>
        HttpMatch: MessageTypeDefinition<_smesh_traffic_v1alpha1_HttpMatch, _smesh_traffic_v1alpha1_HttpMatch__Output>
        HttpRoute: MessageTypeDefinition<_smesh_traffic_v1alpha1_HttpRoute, _smesh_traffic_v1alpha1_HttpRoute__Output>
        LoadBalancer: MessageTypeDefinition<_smesh_traffic_v1alpha1_LoadBalancer, _smesh_traffic_v1alpha1_LoadBalancer__Output>
        LocalRateLimit: MessageTypeDefinition<_smesh_traffic_v1alpha1_LocalRateLimit, _smesh_traffic_v1alpha1_LocalRateLimit__Output>
        LocalityFailover: MessageTypeDefinition<_smesh_traffic_v1alpha1_LocalityFailover, _smesh_traffic_v1alpha1_LocalityFailover__Output>
        OutlierDetection: MessageTypeDefinition<_smesh_traffic_v1alpha1_OutlierDetection, _smesh_traffic_v1alpha1_OutlierDetection__Output>
        OverLimit: MessageTypeDefinition<_smesh_traffic_v1alpha1_OverLimit, _smesh_traffic_v1alpha1_OverLimit__Output>
        PortTrafficPolicy: MessageTypeDefinition<_smesh_traffic_v1alpha1_PortTrafficPolicy, _smesh_traffic_v1alpha1_PortTrafficPolicy__Output>
        QosClass: MessageTypeDefinition<_smesh_traffic_v1alpha1_QosClass, _smesh_traffic_v1alpha1_QosClass__Output>
        RateLimit: MessageTypeDefinition<_smesh_traffic_v1alpha1_RateLimit, _smesh_traffic_v1alpha1_RateLimit__Output>
        RateLimitRule: MessageTypeDefinition<_smesh_traffic_v1alpha1_RateLimitRule, _smesh_traffic_v1alpha1_RateLimitRule__Output>
        RetryBudget: MessageTypeDefinition<_smesh_traffic_v1alpha1_RetryBudget, _smesh_traffic_v1alpha1_RetryBudget__Output>
        RetryPolicy: MessageTypeDefinition<_smesh_traffic_v1alpha1_RetryPolicy, _smesh_traffic_v1alpha1_RetryPolicy__Output>
        StringMatch: MessageTypeDefinition<_smesh_traffic_v1alpha1_StringMatch, _smesh_traffic_v1alpha1_StringMatch__Output>
        Subset: MessageTypeDefinition<_smesh_traffic_v1alpha1_Subset, _smesh_traffic_v1alpha1_Subset__Output>
        TokenBucket: MessageTypeDefinition<_smesh_traffic_v1alpha1_TokenBucket, _smesh_traffic_v1alpha1_TokenBucket__Output>
        TrafficPolicy: MessageTypeDefinition<_smesh_traffic_v1alpha1_TrafficPolicy, _smesh_traffic_v1alpha1_TrafficPolicy__Output>
        TrafficShaping: MessageTypeDefinition<_smesh_traffic_v1alpha1_TrafficShaping, _smesh_traffic_v1alpha1_TrafficShaping__Output>
        WeightedDestination: MessageTypeDefinition<_smesh_traffic_v1alpha1_WeightedDestination, _smesh_traffic_v1alpha1_WeightedDestination__Output>
      }
    }
  }
}

