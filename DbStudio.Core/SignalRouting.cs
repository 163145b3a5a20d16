// What the platform's LISTEN connection (PlatformListener) hands to whom: the change log's channel wakes the stream's
// dispatcher, and announcements from any instance (PlatformSignals) drop the matching caches here. A hosted service
// registered before the listener (CoreServices), so the routes are in place before it listens — in the app and in any
// other host of Core (the bUnit tests), with nothing for the host to wire.
using DbStudio.Core.Access;
using DbStudio.Core.Auth;
using DbStudio.Core.Catalog;
using DbStudio.Core.Console;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using DbStudio.Core.Streams;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace DbStudio.Core;

internal sealed class SignalRouting(PlatformListener listener, PlatformSignals signals, ChangeHub hub, ChangeLog changeLog,
    ChangeCapture capture, Credentials credentials, AccessPolicies accessPolicies, FunctionCatalog functions, OwnerConnections owners,
    EndUserAuth endUsers, ProjectServers servers, SchemaCache schemas, RestConnections restConnections, SqlHistory history, StreamVisibility visibility,
    ILogger<SignalRouting> log) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        listener.Route(ChangeLog.Channel, _ => hub.Wake());
        listener.Route(PlatformSignals.Channel, signals.Raise);
        signals.Received += Drop;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        signals.Received -= Drop;
        return Task.CompletedTask;
    }

    private void Drop(string topic, string projectId, string detail)
    {
        switch (topic)
        {
            case PlatformSignals.Topics.Keys: credentials.Forget(projectId); break;
            case PlatformSignals.Topics.Access:
                accessPolicies.Forget(projectId);
                functions.Invalidate(projectId); // function grants changed
                break;
            case PlatformSignals.Topics.Owner: owners.Forget(projectId); break;
            case PlatformSignals.Topics.Session: endUsers.Evict(detail); break;
            case PlatformSignals.Topics.EndUser when Guid.TryParse(detail, out var user): endUsers.EvictUser(user); break;
            case PlatformSignals.Topics.Moving: // its requests wait for the move (they read where it is again)
                servers.Forget(projectId);
                break;
            case PlatformSignals.Topics.Moved: // on another server (or the move was given up): start over for it
                servers.Resume(projectId);
                accessPolicies.Forget(projectId);
                owners.Forget(projectId);
                schemas.Invalidate(projectId);
                functions.Invalidate(projectId);
                restConnections.Forget(projectId);
                capture.Forget(projectId);
                visibility.Forget(projectId); // its tables have other OIDs there
                changeLog.Forget(projectId); // and its transactions other ids
                hub.ReleaseProject(projectId); // open streams end as dropped; clients resume with Last-Event-ID on the new server
                break;
            case PlatformSignals.Topics.Project:
                servers.Forget(projectId);
                credentials.Forget(projectId);
                accessPolicies.Forget(projectId);
                owners.Forget(projectId);
                endUsers.EvictProject(projectId);
                schemas.Invalidate(projectId);
                functions.Invalidate(projectId);
                restConnections.Forget(projectId);
                hub.RevokeProject(projectId);
                history.Forget(projectId);
                visibility.Forget(projectId);
                changeLog.Forget(projectId);
                _ = changeLog.DropProjectAsync(projectId, CancellationToken.None)
                    .ContinueWith(t => log.LogWarning("Dropping a deleted project's change log failed: {Message}; pruning will",
                        t.Exception!.GetBaseException().Message), TaskContinuationOptions.OnlyOnFaulted);
                break;
        }
    }
}
