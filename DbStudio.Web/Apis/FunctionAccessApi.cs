// Who may execute a function (DESIGN §5): GET|PUT /api/projects/{id}/functions/{fn}/access → {anon_execute, auth_execute}.
// The setting applies to the function name, so to every overload of it.
using System.Security.Claims;
using DbStudio.Core.Access;
using DbStudio.Core.Projects;
using Microsoft.AspNetCore.Http.HttpResults;

namespace DbStudio.Web.Apis;

public static class FunctionAccessApi
{
    public static RouteGroupBuilder MapFunctionAccessApi(this IEndpointRouteBuilder app)
    {
        // PUT is a full replace: both keys, spelled as in GET, or 400 naming what is wrong (StrictJson).
        var g = app.MapGroup("/api/projects/{id}/functions/{fn}/access").RequireAuthorization().WithTags("Access").WithStrictJson();
        g.MapGet("/", Get);
        g.MapPut("/", Put);
        return g;
    }

    public static async Task<Results<Ok<FunctionAccessSettings>, NotFound>> Get(string id, string fn, ClaimsPrincipal user,
        ProjectService projects, FunctionAccess access, CancellationToken ct)
    {
        if (!await projects.IsOwnerAsync(ProjectsApi.UserId(user), id, ct)) return TypedResults.NotFound();
        return await access.GetAsync(id, fn, ct) is { } s ? TypedResults.Ok(s) : TypedResults.NotFound();
    }

    public static async Task<Results<Ok<FunctionAccessSettings>, NotFound>> Put(string id, string fn, Strict<FunctionAccessSettings> strict,
        ClaimsPrincipal user, ProjectService projects, FunctionAccess access, CancellationToken ct)
    {
        var body = strict.Value;
        if (!await projects.IsOwnerAsync(ProjectsApi.UserId(user), id, ct)) return TypedResults.NotFound();
        return await access.PutAsync(id, fn, body, ct) is { } s ? TypedResults.Ok(s) : TypedResults.NotFound();
    }
}
