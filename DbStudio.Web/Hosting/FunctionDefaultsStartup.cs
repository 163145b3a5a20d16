// Start-up step for the functions' secure default (DESIGN §5): projects made before it existed still let PUBLIC execute
// their functions. Once at start, in the background, each such project's owner revokes that (FunctionAccess, on the
// project's own login). Until it has, a call still finds the catalog loaded — and secured — before the function runs.
using DbStudio.Core.Access;

namespace DbStudio.Web.Hosting;

internal sealed class FunctionDefaultsStartup(FunctionAccess access, ILogger<FunctionDefaultsStartup> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            var secured = await access.SecureExistingProjectsAsync(stoppingToken);
            if (secured.Count > 0) log.LogInformation("Revoked PUBLIC EXECUTE on the functions of {Count} projects", secured.Count);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
        catch (Npgsql.NpgsqlException e)
        {
            log.LogWarning("Could not check the projects' function privileges at start-up: {Message}", e.Message);
        }
    }
}
