//! The null Ledger service: the transport's ceiling. The same tonic server stack as Rapport
//! (`tonic::transport::Server`, its connections taken by [`rapport_server::incoming`], the
//! same largest request), on loopback, driven by the same clients with the same requests, but
//! `Append` and `AppendStream` answer at once and do nothing else. What Rapport reaches of its
//! rate is how much of the transport's limit the ledger's own work leaves.

use std::net::SocketAddr;

use futures::StreamExt;
use futures::stream::BoxStream;
use rapport_proto::v1 as pb;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status, Streaming};

use crate::load::{Served, System};
use crate::rapport::RapportClient;

/// A running null service.
pub struct Null {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl Null {
    /// Serves the null Ledger on a loopback port.
    pub async fn start() -> anyhow::Result<Null> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let max_request_bytes = rapport_server::ServerConfig::default().max_request_bytes;
        let ledger = pb::ledger_server::LedgerServer::new(NullLedger).max_decoding_message_size(max_request_bytes);
        let task = tokio::spawn(tonic::transport::Server::builder().add_service(ledger).serve_with_incoming_shutdown(
            rapport_server::incoming(listener),
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Null { address, stop: Some(stop), task: Some(task) })
    }

    /// Stops it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for Null {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Served for Null {
    fn address(&self) -> SocketAddr {
        self.address
    }
}

impl System for Null {
    type Client = RapportClient;

    async fn connect(&self) -> anyhow::Result<RapportClient> {
        RapportClient::connect(self.address).await
    }
}

struct NullLedger;

fn only_appends() -> Status {
    Status::unimplemented("the null service answers appends only")
}

#[tonic::async_trait]
impl pb::ledger_server::Ledger for NullLedger {
    async fn append(&self, _: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        Ok(Response::new(pb::AppendResponse::default()))
    }

    type AppendStreamStream = BoxStream<'static, Result<pb::AppendStreamResponse, Status>>;

    async fn append_stream(
        &self,
        request: Request<Streaming<pb::AppendStreamRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        let answers = request.into_inner().map(|request| {
            let appended = pb::append_stream_response::Outcome::Appended(pb::AppendResponse::default());
            request.map(|r| pb::AppendStreamResponse { correlation_id: r.correlation_id, outcome: Some(appended) })
        });
        Ok(Response::new(answers.boxed()))
    }

    type ReadStreamStream = BoxStream<'static, Result<pb::RecordedEvent, Status>>;

    async fn read_stream(&self, _: Request<pb::ReadStreamRequest>) -> Result<Response<Self::ReadStreamStream>, Status> {
        Err(only_appends())
    }

    type ReadAllStream = BoxStream<'static, Result<pb::RecordedEvent, Status>>;

    async fn read_all(&self, _: Request<pb::ReadAllRequest>) -> Result<Response<Self::ReadAllStream>, Status> {
        Err(only_appends())
    }

    async fn verify(&self, _: Request<pb::VerifyRequest>) -> Result<Response<pb::VerifyResponse>, Status> {
        Err(only_appends())
    }

    async fn digest(&self, _: Request<pb::DigestRequest>) -> Result<Response<pb::DigestResponse>, Status> {
        Err(only_appends())
    }

    type SubscribeStream = BoxStream<'static, Result<pb::SubscribeResponse, Status>>;

    async fn subscribe(&self, _: Request<pb::SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(only_appends())
    }
}
