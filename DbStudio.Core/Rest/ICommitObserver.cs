// What REST tells when one of its writes committed. The live stream implements it (and reads the change log at once,
// without waiting for PostgreSQL's notification); REST knows nothing of streams.
namespace DbStudio.Core.Rest;

/// <summary>Told when a write through this instance committed, so the stream need not wait for the notification.</summary>
public interface ICommitObserver
{
    void Committed(string projectId);
}
