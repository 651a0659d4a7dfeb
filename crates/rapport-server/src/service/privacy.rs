//! `rapport.v1.Privacy`: a contact forgotten (erasure), and everything held about a contact
//! (access). The erasure itself is `privacy.rs`.

use std::sync::Arc;

use rapport_domain::{EventBody, Label, StaffId};
use rapport_proto::v1 as pb;
use rapport_wire::sealing::holds_clear_text;
use rapport_wire::timestamp_to_wire;
use rapport_wire::views::{Opener, contact_to_wire};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::read_up_to;
use crate::access::Caller;
use crate::error::{PrivacyError, ReadError};
use crate::privacy::{ErasureRequest, forget, read_stream};
use crate::state::AppState;

/// `rapport.v1.Privacy`.
pub(crate) struct PrivacyService(pub Arc<AppState>);

#[tonic::async_trait]
impl pb::privacy_server::Privacy for PrivacyService {
    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id, contact_id = %request.get_ref().contact_id))]
    async fn forget_contact(
        &self,
        request: Request<pb::ForgetContactRequest>,
    ) -> Result<Response<pb::ForgetContactResponse>, Status> {
        let caller = request.extensions().get::<Arc<Caller>>().cloned();
        let request = request.into_inner();
        let limits = &self.0.limits;
        let invalid = |field: &'static str| move |e: rapport_domain::InvalidValue| PrivacyError::Invalid(e.at(field));
        let account_id = self.0.account_id(&request.account_id)?;
        let contact_id = rapport_wire::requests::contact_id(&request.contact_id, "contact_id", limits)
            .map_err(PrivacyError::Invalid)?;
        let reason = Label::parse_required(&request.reason, limits).map_err(invalid("reason"))?;
        let requested_by = StaffId::parse(&request.requested_by, limits).map_err(invalid("requested_by"))?;
        let (actor, recorded_by) = match caller {
            Some(caller) => {
                (StaffId::parse(&caller.identity, limits).map_err(invalid("token identity"))?, caller.identity.clone())
            }
            None => (requested_by.clone(), String::new()),
        };
        let erasure =
            forget(&self.0, ErasureRequest { account_id, contact_id, reason, requested_by, actor, recorded_by })
                .await?;
        Ok(Response::new(pb::ForgetContactResponse {
            forgotten_at: Some(timestamp_to_wire(erasure.forgotten_at)),
            position: erasure.position,
            version: erasure.version,
            already_forgotten: erasure.already,
        }))
    }

    #[instrument(skip_all, fields(account_id = %request.get_ref().account_id, contact_id = %request.get_ref().contact_id))]
    async fn subject_report(
        &self,
        request: Request<pb::SubjectReportRequest>,
    ) -> Result<Response<pb::SubjectReportResponse>, Status> {
        read_up_to(&self.0, request.metadata(), request.get_ref().min_position).await?;
        let request = request.into_inner();
        let state = &self.0;
        let account_id = state.account_id(&request.account_id)?;
        let contact_id = rapport_wire::requests::contact_id(&request.contact_id, "contact_id", &state.limits)
            .map_err(PrivacyError::Invalid)?;
        let build = state.projections.active();
        let projected = build.get(&account_id)?.ok_or_else(|| ReadError::AccountNotFound(account_id.clone()))?;
        let Some(contact) = projected.account.contacts.get(&contact_id) else {
            return Err(PrivacyError::ContactNotFound { account_id, contact_id }.into());
        };
        let stream = read_stream(state, &account_id).await?;
        let mut concerning = Vec::new();
        let (mut erasure, mut stored_in_clear) = (None, false);
        for record in stream {
            let event = rapport_wire::decode_event(&record).map_err(ReadError::from)?;
            if !event.body.names_contact(&contact_id) {
                continue;
            }
            stored_in_clear |= holds_clear_text(&event);
            if matches!(event.body, EventBody::ContactForgotten(_)) {
                erasure = Some(record);
            } else {
                concerning.push(record);
            }
        }
        let state_for_render = Arc::clone(state);
        let erasure_record = erasure.clone();
        let (events, erasure) = tokio::task::spawn_blocking(move || {
            let events = state_for_render.recorded_to_wire(&concerning)?;
            let erasure = match erasure_record {
                Some(record) => state_for_render.recorded_to_wire(std::slice::from_ref(&record))?.pop(),
                None => None,
            };
            Ok::<_, ReadError>((events, erasure))
        })
        .await
        .map_err(ReadError::from)??;
        let opener = Opener::new(&account_id, &state.personal);
        Ok(Response::new(pb::SubjectReportResponse {
            account_id: account_id.to_string(),
            contact_id: contact_id.to_string(),
            contact: Some(contact_to_wire(contact, projected.contacts.get(&contact_id), opener)),
            events,
            forgotten: contact.forgotten,
            erasure,
            stored_in_clear,
            generated_at: Some(timestamp_to_wire((state.clock)())),
        }))
    }
}
