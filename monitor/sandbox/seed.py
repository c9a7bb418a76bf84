"""Seed a fake AWS account in moto for the sandbox: what a real sentinel deployment finds.

credstash (KMS key + DynamoDB table + the Hive password), the state table, SNS page topic
with an SQS queue subscribed (so the demo can show the pages), the persistent EMR cluster
with bootstrap actions and steps, an internal network load balancer (TLS listener on 443)
forwarding to a target group with the master registered, and a private Route 53 zone with
the production layout's two names:

- ``hive.internal.example.com`` (:data:`LB_NAME`): the name clients dial, an alias record to
  the load balancer's DNS name. Not sentinel's: a recovery re-registers targets and leaves it.
- ``hive-master.internal.example.com`` (:data:`MASTER_RECORD`): a CNAME to the master's private
  name, which REPOINT rewrites to the new master (``recovery.routing.route53.record``).

Call inside ``moto.mock_aws()``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from monitor.core.aws import ClientFactory
from monitor.core.state.dynamodb import create_table

REGION = "us-east-1"
CLUSTER_NAME = "RC.HIVE.ADHOC"
ZONE_NAME = "internal.example.com"  # the private hosted zone
LB_NAME = "hive.internal.example.com"  # alias A -> the load balancer (clients, hive-via-elb)
MASTER_RECORD = "hive-master.internal.example.com"  # CNAME -> the master (sentinel re-points it)
CREDSTASH_KEY = "hive.rcapp.password"


@dataclass
class Pager:
    """An SQS queue subscribed to the page topic: what on-call's pager would receive."""

    clients: ClientFactory
    topic_arn: str
    queue_url: str

    @classmethod
    def create(cls, clients: ClientFactory, topic_name: str = "sentinel-pages") -> Pager:
        sns, sqs = clients.client("sns"), clients.client("sqs")
        topic = sns.create_topic(Name=topic_name)["TopicArn"]
        queue_url = sqs.create_queue(QueueName=f"{topic_name}-pager")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        return cls(clients, topic, queue_url)

    def messages(self) -> list[dict[str, Any]]:
        """Every message published since the last call (SNS envelopes), oldest first."""
        sqs = self.clients.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            for m in batch:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


@dataclass
class Seeded:
    clients: ClientFactory
    cluster_id: str
    master_instance: str
    master_dns: str
    target_group_arn: str
    zone_id: str
    pager: Pager
    load_balancer_dns: str = ""  # the load balancer's own DNS name (LB_NAME is an alias to it)
    # Every primary (instance_id, private_dns): three for a cluster with three primary nodes.
    primaries: list[dict[str, str]] = field(default_factory=list)

    @property
    def page_topic(self) -> str:
        return self.pager.topic_arn

    def pages(self) -> list[dict[str, Any]]:
        return self.pager.messages()


def seed(password: str, *, state_table: str = "sentinel-state", primaries: int = 1) -> Seeded:
    """``primaries=3``: a cluster with three primary nodes (termination protection on, as EMR
    forces it), each registered with the target group."""
    import credstash

    clients = ClientFactory(REGION)
    kms = clients.client("kms")
    key = kms.create_key(Description="credstash")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/credstash", TargetKeyId=key)
    credstash.createDdbTable(region=REGION, table="credential-store")
    credstash.putSecret(CREDSTASH_KEY, password, version="1", region=REGION, table="credential-store",
                        context={"env": "sandbox"}, dynamodb=clients.resource("dynamodb"), kms=kms)
    create_table(clients.client("dynamodb"), state_table)

    pager = Pager.create(clients)

    ec2 = clients.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]

    emr = clients.client("emr")
    cluster_id = emr.run_job_flow(
        Name=CLUSTER_NAME,
        ReleaseLabel="emr-6.15.0",
        LogUri="s3://rc-emr-logs/hive/",
        Applications=[{"Name": "Hive"}, {"Name": "Hadoop"}, {"Name": "Tez"}],
        Configurations=[{"Classification": "hive-site", "Properties": {
            "hive.server2.authentication": "CUSTOM",
            "hive.server2.custom.authentication.class": "com.example.RcHiveAuthentication",
            "hive.server2.enable.doAs": "false"}}],
        Instances={
            "InstanceGroups": [
                {"Name": "master", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": primaries,
                 "Market": "ON_DEMAND"},
                {"Name": "core", "InstanceRole": "CORE", "InstanceType": "r5.2xlarge", "InstanceCount": 3,
                 "Market": "ON_DEMAND"},
            ],
            "Ec2SubnetId": subnet,
            "Ec2KeyName": "rc-emr",
            "KeepJobFlowAliveWhenNoSteps": True,
            "TerminationProtected": primaries > 1,
        },
        BootstrapActions=[{"Name": "install auth jar", "ScriptBootstrapAction": {
            "Path": "s3://rc-emr-bootstrap/install-auth.sh", "Args": ["--jar", "rc-hive-auth.jar"]}}],
        Steps=[
            {"Name": "enable ssl", "ActionOnFailure": "CANCEL_AND_WAIT",
             "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", "/opt/rc/enable-ssl.sh"]}},
            {"Name": "warm metastore", "ActionOnFailure": "CONTINUE",
             "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["hive", "-e", "SHOW DATABASES"]}},
        ],
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        VisibleToAllUsers=True,
        Tags=[{"Key": "team", "Value": "rc"}, {"Key": "env", "Value": "sandbox"},
              {"Key": "sentinel:target", "Value": "prod-hive"}],  # how an operator marks the first cluster
    )["JobFlowId"]
    masters = emr.list_instances(ClusterId=cluster_id, InstanceGroupTypes=["MASTER"])["Instances"]
    master = masters[0]

    # The load balancer: TLS on 443 with its own certificate, re-encrypting to the masters'
    # HiveServer2 on 10000 (the sandbox's stand-in, monitor/sandbox/elb.py, does the same).
    elbv2 = clients.client("elbv2")
    lb = elbv2.create_load_balancer(Name="hive", Subnets=[subnet], Scheme="internal",
                                    Type="network")["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name="hive", Protocol="TLS", Port=10000, VpcId=vpc,
                                   TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    certificate = clients.client("acm").request_certificate(DomainName=LB_NAME)["CertificateArn"]
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TLS", Port=443,
                          Certificates=[{"CertificateArn": certificate}],
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": m["Ec2InstanceId"], "Port": 10000} for m in masters])

    r53 = clients.client("route53")
    zone = r53.create_hosted_zone(Name=ZONE_NAME, CallerReference="sentinel-sandbox",
                                  HostedZoneConfig={"PrivateZone": True, "Comment": "sandbox"},
                                  VPC={"VPCRegion": REGION, "VPCId": vpc})["HostedZone"]["Id"].split("/")[-1]
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {  # the operators' record: never changed by sentinel
            "Name": LB_NAME, "Type": "A", "AliasTarget": {
                "HostedZoneId": lb["CanonicalHostedZoneId"], "DNSName": lb["DNSName"], "EvaluateTargetHealth": False}}},
        {"Action": "UPSERT", "ResourceRecordSet": {  # recovery.routing.route53.record
            "Name": MASTER_RECORD, "Type": "CNAME", "TTL": 60,
            "ResourceRecords": [{"Value": master["PrivateDnsName"]}]}},
    ]})

    return Seeded(clients, cluster_id, master["Ec2InstanceId"], master["PrivateDnsName"], tg, zone, pager,
                  load_balancer_dns=lb["DNSName"],
                  primaries=[{"instance_id": m["Ec2InstanceId"], "private_dns": m["PrivateDnsName"]} for m in masters])
