// Who is calling a project's REST API or stream: resolved from its credential (Credentials), it decides the project login
// a request runs on and the request.* settings policies read.
using DbStudio.Core.Projects;

namespace DbStudio.Core.Auth;

public enum CallerKind { Anon, User, Admin }

/// <summary>Who is calling: decides the database role and the request.* settings policies read.</summary>
public sealed record RestCaller(string ProjectId, CallerKind Kind, Guid? UserId = null, string? UserRole = null)
{
    public bool IsAnonymous => Kind == CallerKind.Anon;

    /// <summary>The project role this caller's requests run as (DESIGN §3).</summary>
    public RestRole Role => Kind switch
    {
        CallerKind.Anon => RestRole.Anon,
        CallerKind.User when UserRole == Platform.EndUserRoles.Admin => RestRole.UserAdmin,
        CallerKind.User => RestRole.User,
        _ => RestRole.Owner,
    };
}
